package lazyctx

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// A Context is embedded in its owner's struct and set up with Init. The
// zero value is not usable.
type Context struct {
	parent      context.Context
	key, val    any // Value(key) is val: the owner, without a context.WithValue
	deadline    time.Time
	hasDeadline bool

	real   real        // the standard context, once materialized
	isReal atomic.Bool // real is set: written once, under mu, before this
	ended  atomic.Bool

	mu        sync.Mutex // guards materializing and ending
	cause     error      // End's cause
	endedDone bool       // when End was called, the context was done already (parent, deadline)
}

type real struct {
	ctx         context.Context
	cancel      context.CancelFunc      // with a deadline: End's cause is context.Canceled
	cancelCause context.CancelCauseFunc // without
}

func (r *real) end(cause error) {
	if r.cancel != nil {
		r.cancel()
		return
	}
	r.cancelCause(cause)
}

// Init makes c a child of parent whose Value(key) is val.
func (c *Context) Init(parent context.Context, key, val any) {
	c.parent, c.key, c.val = parent, key, val
}

// InitDeadline makes c a child of parent with a deadline, which must not
// be later than the parent's, and whose Value(key) is val.
func (c *Context) InitDeadline(parent context.Context, deadline time.Time, key, val any) {
	c.parent, c.deadline, c.hasDeadline = parent, deadline, true
	c.key, c.val = key, val
}

// Deadline implements context.Context.
func (c *Context) Deadline() (time.Time, bool) {
	if c.hasDeadline {
		return c.deadline, true
	}
	return c.parent.Deadline()
}

// Done implements context.Context. It builds the standard context the
// first time it is called.
func (c *Context) Done() <-chan struct{} {
	return c.materialize().Done()
}

// Err implements context.Context.
func (c *Context) Err() error {
	if c.isReal.Load() {
		return c.real.ctx.Err()
	}
	if !c.ended.Load() && c.parent.Err() == nil && (!c.hasDeadline || time.Now().Before(c.deadline)) {
		return nil
	}
	// Done from now on: fix the error, as the standard context does.
	return c.materialize().Err()
}

// Value implements context.Context.
func (c *Context) Value(key any) any {
	if c.key != nil && key == c.key {
		return c.val
	}
	if c.isReal.Load() {
		return c.real.ctx.Value(key)
	}
	if c.ended.Load() {
		// context.Cause looks its answer up with Value: after End it must
		// find the canceled context.
		return c.materialize().Value(key)
	}
	return c.parent.Value(key)
}

func (c *Context) materialize() context.Context {
	if c.isReal.Load() {
		return c.real.ctx
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isReal.Load() {
		return c.real.ctx
	}
	r := &c.real
	switch {
	case c.ended.Load() && !c.endedDone:
		// Built after End, which canceled it first: its error and cause
		// are End's, whatever its parent has become since, as with a
		// standard context canceled before its parent.
		r.ctx, r.cancelCause = context.WithCancelCause(context.WithoutCancel(c.parent))
		r.cancelCause(c.cause)
	case c.hasDeadline && !time.Now().Before(c.deadline):
		// The deadline passed before anything waited on the context: it
		// came first, as a standard context's timer would have fired
		// first, whatever the parent has become since (a client that went
		// away after the deadline does not make it a cancellation).
		r.ctx, r.cancel = context.WithDeadline(context.WithoutCancel(c.parent), c.deadline)
	case c.hasDeadline:
		r.ctx, r.cancel = context.WithDeadline(c.parent, c.deadline)
	default:
		r.ctx, r.cancelCause = context.WithCancelCause(c.parent)
	}
	if c.ended.Load() {
		r.end(c.cause)
	}
	c.isReal.Store(true)
	return r.ctx
}

// End cancels the context with cause (context.Canceled when nil, and
// always for a context with a deadline), as
// net/http cancels a request's context when its handler returns: the
// goroutines left behind see it done, and the timer, if any, is released.
// Later calls do nothing.
func (c *Context) End(cause error) {
	if cause == nil {
		cause = context.Canceled
	}
	c.mu.Lock()
	if c.ended.Load() {
		c.mu.Unlock()
		return
	}
	c.cause = cause
	c.endedDone = c.parent.Err() != nil || c.hasDeadline && !time.Now().Before(c.deadline)
	c.ended.Store(true)
	materialized := c.isReal.Load()
	c.mu.Unlock()
	if materialized {
		c.real.end(cause)
	}
}

func (c *Context) String() string {
	if c.hasDeadline {
		return "telltale.lazyctx(deadline " + c.deadline.String() + ")"
	}
	return "telltale.lazyctx"
}
