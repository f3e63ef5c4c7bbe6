package transport

import (
	"context"
	"sync"
)

// A Scope is the lifetime of a unit of work — typically one inbound request —
// that response bodies can be bound to. A body whose request context carries a
// Scope is dead once the Scope ends: nobody is left to read it, and the
// connection under it cannot be reused until it is closed. [Scope.End]
// therefore reports every body opened under the Scope and still open as a
// leak (reason [LeakOutOfScope]) and, unless the [Transport] was built with
// [WithReportOnly], closes it.
//
// The telltale Echo middleware opens one Scope per request; other servers can
// do the same with [WithScope].
type Scope struct {
	ctx   scopeContext // the context that carries the scope, in the same allocation
	mu    sync.Mutex
	ended bool
	open  []*record
}

type scopeKey struct{}

// WithScope returns a copy of ctx that carries a new [Scope], and that Scope.
// Every response body obtained through a telltale [Transport] with the
// returned context (or one derived from it) is bound to the Scope. Call
// [Scope.End] when the work is done, typically in a defer.
func WithScope(ctx context.Context) (context.Context, *Scope) {
	s := &Scope{}
	s.ctx = scopeContext{Context: ctx, scope: s}
	return &s.ctx, s
}

// scopeContext is the context carrying a Scope. It lives inside the Scope,
// which saves an allocation per request.
type scopeContext struct {
	context.Context
	scope *Scope
}

func (c *scopeContext) Value(key any) any {
	if key == (scopeKey{}) {
		return c.scope
	}
	return c.Context.Value(key)
}

// ScopeFromContext returns the [Scope] carried by ctx, or nil.
func ScopeFromContext(ctx context.Context) *Scope {
	s, _ := ctx.Value(scopeKey{}).(*Scope)
	return s
}

// add binds rec to the scope. It reports false when the scope has already
// ended: such a body is left to the other leak checks.
func (s *Scope) add(rec *record) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return false
	}
	if len(s.open) == cap(s.open) {
		s.compactLocked()
	}
	s.open = append(s.open, rec)
	return true
}

// compactLocked drops finished bodies, so that a long-lived scope holds only
// the bodies still open, not every body it ever saw.
func (s *Scope) compactLocked() {
	kept := s.open[:0]
	for _, rec := range s.open {
		if rec.isOpen() {
			kept = append(kept, rec)
		}
	}
	clear(s.open[len(kept):])
	s.open = kept
}

// End ends the scope. Every body opened under it that is still open is
// reported as a leak — its client span ends with the leak event, the leak is
// counted and logged — and repaired unless its Transport is report-only. End
// returns those leaks, oldest first, so that the caller can also record them
// where it wants (the Echo middleware puts them on the server span). Later
// calls return nil; bodies opened under the scope after End are left to the
// unreachable and too-old checks. End is safe to call concurrently with the
// bodies' own Read and Close.
func (s *Scope) End() []Leak {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return nil
	}
	s.ended = true
	open := s.open
	s.open = nil
	s.mu.Unlock()

	var leaks []Leak
	for _, rec := range open {
		if l, ok := rec.t.reportLeak(rec, LeakOutOfScope); ok {
			leaks = append(leaks, l)
		}
	}
	return leaks
}
