package transport

import (
	"fmt"
	"runtime"
	"strings"
	"sync"

	"github.com/telltale-go/telltale/internal/appcode"
)

// callerDepth is how many program counters RoundTrip captures: deep enough
// to get past net/http's client, helpers, proxies and middleware to the
// application's own frame.
const callerDepth = 32

// stackFrames is how many frames a report's stack keeps.
const stackFrames = 8

// A CallSite is the line of application code that made a request.
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

// alwaysSkipped are the packages between the caller and the transport
// itself; their frames are never a call site, nor part of a report's stack.
var alwaysSkipped = [...]string{
	"runtime.",
	"net/http.",
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp.",
	"github.com/telltale-go/telltale/transport.",
}

// siteFinder turns captured program counters into a call site: the first
// frame of the application's own code — its main module, package main —
// that is not in a package given to WithCallSiteSkip. Where no frame of
// the application's is on the stack (Echo's proxy middleware, a
// ReverseProxy mounted directly), it is the first frame outside the
// standard library, and failing that the first frame outside net/http.
type siteFinder struct {
	skip    []string // WithCallSiteSkip
	appRoot string   // the main module's path
}

func newSiteFinder(skip []string) siteFinder {
	return siteFinder{skip: skip, appRoot: appcode.MainModule()}
}

// find symbolizes pcs. It is only called for a report — a leak, an
// introspection — never on the request path.
func (f siteFinder) find(pcs []uintptr) (CallSite, string) {
	var (
		stack            strings.Builder
		app, lib, other  CallSite
		kept             int
		frames           = runtime.CallersFrames(pcs)
		haveApp, haveLib bool
	)
	for {
		fr, more := frames.Next()
		if fr.Function != "" && !f.skipped(fr.Function) {
			site := CallSite{Function: fr.Function, File: fr.File, Line: fr.Line}
			pkg := packageOf(fr.Function)
			switch {
			case !haveApp && f.isApp(pkg):
				app, haveApp = site, true
			case !haveLib && !isStd(pkg):
				lib, haveLib = site, true
			case other.File == "":
				other = site
			}
			if kept < stackFrames {
				fmt.Fprintf(&stack, "%s\n\t%s:%d\n", fr.Function, fr.File, fr.Line)
				kept++
			}
		}
		if !more {
			break
		}
	}
	switch {
	case haveApp:
		return app, stack.String()
	case haveLib:
		return lib, stack.String()
	}
	return other, stack.String()
}

func (f siteFinder) skipped(fn string) bool {
	for _, p := range alwaysSkipped {
		if strings.HasPrefix(fn, p) {
			return true
		}
	}
	for _, p := range f.skip {
		if appcode.InPackage(fn, p) {
			return true
		}
	}
	return false
}

func (f siteFinder) isApp(pkg string) bool {
	if pkg == "main" {
		return true
	}
	return f.appRoot != "" && (pkg == f.appRoot || strings.HasPrefix(pkg, f.appRoot+"/"))
}

// packageOf returns the package path of a fully qualified function name,
// "example.com/a/b.(*T).M" → "example.com/a/b".
func packageOf(fn string) string {
	slash := strings.LastIndexByte(fn, '/')
	if dot := strings.IndexByte(fn[slash+1:], '.'); dot >= 0 {
		return fn[:slash+1+dot]
	}
	return fn
}

// isStd reports whether pkg belongs to the standard library: its first
// path element has no dot.
func isStd(pkg string) bool {
	first, _, _ := strings.Cut(pkg, "/")
	return !strings.Contains(first, ".")
}

// siteCache remembers the call sites of recent stacks: a leak storm comes
// from a handful of lines, and symbolizing the same stack again for each of
// thousands of leaks is what would make reporting them costly.
type siteCache struct {
	mu    sync.Mutex
	sites map[[callerDepth]uintptr]cachedSite
}

type cachedSite struct {
	site  CallSite
	stack string
}

// maxCachedSites bounds the cache; past it, it starts afresh.
const maxCachedSites = 1024

func (c *siteCache) lookup(f siteFinder, pcs [callerDepth]uintptr, n int) (CallSite, string) {
	c.mu.Lock()
	s, ok := c.sites[pcs]
	c.mu.Unlock()
	if ok {
		return s.site, s.stack
	}
	s.site, s.stack = f.find(pcs[:n])
	c.mu.Lock()
	if c.sites == nil || len(c.sites) >= maxCachedSites {
		c.sites = make(map[[callerDepth]uintptr]cachedSite)
	}
	c.sites[pcs] = s
	c.mu.Unlock()
	return s.site, s.stack
}
