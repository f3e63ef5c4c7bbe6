package middleware

import (
	"context"
	"sync"
	"time"
)

// A deadlineContext is a context with a deadline whose timer is created only
// when someone waits on Done.
//
// context.WithDeadline costs four allocations per request (the context, the
// timer, its callback and the cancel func) even when the handler never waits
// on its context. Most of a gateway's handlers do — every outbound request
// selects on Done — but a deadline must cost next to nothing on the routes
// that don't, or people leave it off. Until Done is called, Err and Deadline
// are computed from the clock and the parent; from then on everything is
// delegated to a real context.WithDeadline, so the behaviour is the standard
// library's, and children created with context.WithCancel and friends attach
// to it directly (Value hands them its cancelCtx) without the goroutine the
// context package starts for unknown parent types.
type deadlineContext struct {
	context.Context // the parent
	deadline        time.Time

	mu     sync.Mutex
	timed  context.Context // context.WithDeadline(parent, deadline), once Done was called
	cancel context.CancelFunc
	ended  bool // the request is over
}

func (c *deadlineContext) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *deadlineContext) Done() <-chan struct{} {
	return c.materialize().Done()
}

func (c *deadlineContext) materialize() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timed == nil {
		c.timed, c.cancel = context.WithDeadline(c.Context, c.deadline)
		if c.ended {
			c.cancel()
		}
	}
	return c.timed
}

func (c *deadlineContext) Err() error {
	c.mu.Lock()
	timed, ended := c.timed, c.ended
	c.mu.Unlock()
	if timed == nil {
		if !ended && c.Context.Err() == nil && time.Now().Before(c.deadline) {
			return nil
		}
		// Done from now on: fix the error, as context.WithDeadline does.
		timed = c.materialize()
	}
	return timed.Err()
}

func (c *deadlineContext) Value(key any) any {
	c.mu.Lock()
	timed := c.timed
	c.mu.Unlock()
	if timed != nil {
		return timed.Value(key)
	}
	return c.Context.Value(key)
}

// end cancels the context when the request is over, as net/http does with
// the request context once the handler returns: goroutines the handler left
// behind see their context done now, and the timer is released.
func (c *deadlineContext) end() {
	c.mu.Lock()
	c.ended = true
	cancel := c.cancel
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

func (c *deadlineContext) String() string {
	return "telltale.Deadline(" + c.deadline.String() + ")"
}
