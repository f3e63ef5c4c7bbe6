package transport

import (
	"fmt"
	"runtime"
	"strings"
)

// callerDepth is how many frames are captured at RoundTrip: enough to get
// past net/http's client and otelhttp to the application's own frames, small
// enough to cost a few hundred nanoseconds.
const callerDepth = 20

// stackFrames is how many application frames a leak report keeps.
const stackFrames = 8

// A CallSite is the line of application code that made a request: the first
// frame of the request's stack outside net/http, otelhttp, telltale and the
// packages given to [WithCallSiteSkip].
type CallSite struct {
	Function string `json:"function"`
	File     string `json:"file"`
	Line     int    `json:"line"`
}

// String returns "file:line function", the form editors and terminals turn
// into links. It returns "unknown" for a zero CallSite.
func (c CallSite) String() string {
	if c.File == "" {
		return "unknown"
	}
	return fmt.Sprintf("%s:%d %s", c.File, c.Line, c.Function)
}

// alwaysSkipped are the packages between the application and the
// transport; a frame whose function name starts with one of them is not the
// application's.
var alwaysSkipped = [...]string{
	"runtime.",
	"net/http.",
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp.",
	"github.com/telltale-go/telltale/transport.",
	"github.com/telltale-go/telltale/middleware.",
	"github.com/labstack/echo/v4.",
}

// skipped reports whether fn, a fully qualified function name, belongs to a
// package that is not the application's.
func (c *config) skipped(fn string) bool {
	for _, p := range alwaysSkipped {
		if strings.HasPrefix(fn, p) {
			return true
		}
	}
	for _, p := range c.skipPackages {
		if strings.HasPrefix(fn, p) && len(fn) > len(p) && (fn[len(p)] == '.' || fn[len(p)] == '/') {
			return true
		}
	}
	return false
}

// symbolize turns captured program counters into the call site and a short
// stack of application frames. It is only called when a report needs it —
// a leak or an introspection call — never on the request path.
func (c *config) symbolize(pcs []uintptr) (CallSite, string) {
	var (
		site  CallSite
		stack strings.Builder
		n     int
	)
	frames := runtime.CallersFrames(pcs)
	for {
		f, more := frames.Next()
		if f.Function != "" && !c.skipped(f.Function) {
			if n == 0 {
				site = CallSite{Function: f.Function, File: f.File, Line: f.Line}
			}
			if n < stackFrames {
				fmt.Fprintf(&stack, "%s\n\t%s:%d\n", f.Function, f.File, f.Line)
			}
			n++
		}
		if !more {
			break
		}
	}
	return site, stack.String()
}
