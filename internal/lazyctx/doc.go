// Package lazyctx is a context that is canceled when its owner is done
// with it — a request's handler returned, a scope ended — and may carry a
// deadline, at the cost of one allocation, shared with its owner, until
// somebody waits on it.
//
// context.WithDeadline costs four allocations (the context, the timer, its
// callback, the cancel func) even when nothing ever waits on the context.
// A deadline and a scope must cost next to nothing on the requests that do
// not use them, or people leave them off. Until Done is called, Err and
// Deadline are answered from the clock, the parent and the owner's End;
// from then on everything is delegated to a real context.WithDeadlineCause
// or context.WithCancelCause, so the behaviour is the standard library's,
// and children created with context.WithCancel and friends attach to it
// directly (Value hands them its cancelCtx) without the goroutine the
// context package starts for a parent of a type it does not know.
//
// One thing the lazy context cannot know is which of its deadline and its
// parent's cancellation came first when nothing looked before both had
// happened: it then holds that the deadline, which has passed, came first
// — as a standard context does when the parent is canceled after its
// timer fired, the case of a handler that ignores its context and whose
// client gives up after the deadline. A parent canceled before the
// deadline and seen before it (by Err, Done or a child) is a cancellation.
package lazyctx
