// Package godebug stands in for std's internal/godebug in the compat
// harness's copy of net/http/httputil, which reads one setting
// (urlmaxqueryparams) through it. The real package registers its settings
// with the runtime through linknames that code outside std may not use; this
// one reads $GODEBUG once, which is all the copied tests need.
package godebug

import (
	"os"
	"strings"
	"sync"
)

// A Setting is a single setting in the $GODEBUG environment variable.
type Setting struct {
	name  string
	once  sync.Once
	value string
}

// New returns the setting with the given name; a leading '#' (an
// undocumented setting, for std) is dropped.
func New(name string) *Setting { return &Setting{name: strings.TrimPrefix(name, "#")} }

// Name returns the setting's name.
func (s *Setting) Name() string { return s.name }

// String returns name=value.
func (s *Setting) String() string { return s.name + "=" + s.Value() }

// IncNonDefault does nothing: the runtime metric it counts is std's.
func (s *Setting) IncNonDefault() {}

// Value returns the setting's value in $GODEBUG (the last one if it is set
// more than once), or "".
func (s *Setting) Value() string {
	s.once.Do(func() {
		for kv := range strings.SplitSeq(os.Getenv("GODEBUG"), ",") {
			if k, v, ok := strings.Cut(kv, "="); ok && k == s.name {
				s.value = v
			}
		}
	})
	return s.value
}
