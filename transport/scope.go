package transport

import (
	"context"
	"errors"
	"sync"

	"github.com/telltale-go/telltale/internal/lazyctx"
)

// A Scope is the lifetime of a unit of work — typically one inbound request
// — that response bodies are bound to. A body obtained with the Scope's
// context is dead once the Scope ends: nobody is left to read it, and the
// connection under it cannot be reused until it is closed. [Scope.End]
// therefore reports every body still open under the Scope as a leak (reason
// [LeakOutOfScope]) and, unless the [Transport] was built with
// [WithReportOnly], closes it.
//
// Work meant to outlive the Scope detaches from it the way Go code detaches
// from a request: with context.WithoutCancel (or a context made from it).
// The Scope's context is canceled when the Scope ends, as net/http cancels
// a request's context when its handler returns; a body whose request
// context is then done — canceled by the Scope's end or earlier, by a
// timeout or a cancel of the handler's own — is dead and reported, while a
// body whose context is still live is detached, and left to the other leak
// checks (unreachable, too old, open at close).
//
// The telltale Echo middleware opens one Scope per request; other servers
// can do the same with [WithScope].
type Scope struct {
	ctx   lazyctx.Context // the scope's context, in the same allocation
	mu    sync.Mutex
	ended bool
	open  []*record
}

type scopeKey struct{}

// errScopeEnded is the cause with which a Scope's context is canceled
// (context.Cause tells it).
var errScopeEnded = errors.New("transport: scope ended")

// WithScope returns a copy of ctx that carries a new [Scope], and that Scope.
// Every response body obtained through a telltale [Transport] with the
// returned context (or one derived from it) is bound to the Scope. Call
// [Scope.End] when the work is done, typically in a defer.
func WithScope(ctx context.Context) (context.Context, *Scope) {
	s := &Scope{}
	s.ctx.Init(ctx, scopeKey{}, s)
	return &s.ctx, s
}

func scopeFrom(ctx context.Context) *Scope {
	s, _ := ctx.Value(scopeKey{}).(*Scope)
	return s
}

// add binds rec to the scope. A scope that has ended does not take it: the
// body is left to the other leak checks.
func (s *Scope) add(rec *record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return
	}
	if len(s.open) == cap(s.open) {
		s.compactLocked()
	}
	s.open = append(s.open, rec)
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

// End ends the scope: it cancels the scope's context, then reports every
// body opened under it, still open and not detached, as a leak — its client
// span ends with the leak event, the leak is counted and logged — and
// repairs it unless its Transport is report-only. End returns those leaks,
// oldest first, so that the caller can also record them where it wants (the
// Echo middleware puts them on the server span). Later calls return nil.
// End is safe to call concurrently with the bodies' own Read and Close.
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

	s.ctx.End(errScopeEnded)
	var leaks []Leak
	for _, rec := range open {
		if rec.Context.Err() == nil {
			// Still live once the scope's context is canceled: detached
			// (context.WithoutCancel, alone or under a timeout of its
			// own still running), meant to outlive the scope.
			continue
		}
		if l, ok := rec.t.reportLeak(rec, LeakOutOfScope); ok {
			leaks = append(leaks, l)
		}
	}
	return leaks
}
