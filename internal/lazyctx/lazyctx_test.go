package lazyctx_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/telltale-go/telltale/internal/lazyctx"
)

type key struct{}

// With a deadline, the context behaves as context.WithDeadline's: not done
// before the deadline, done at it with DeadlineExceeded, and its children
// too.
func TestDeadlineBehavesLikeTheStandardOne(t *testing.T) {
	var c lazyctx.Context
	deadline := time.Now().Add(50 * time.Millisecond)
	c.InitDeadline(context.Background(), deadline, nil, nil)
	if d, ok := c.Deadline(); !ok || !d.Equal(deadline) || c.Err() != nil {
		t.Fatalf("before the deadline: %v %v %v", d, ok, c.Err())
	}
	child, cancel := context.WithCancel(&c)
	defer cancel()
	start := time.Now()
	<-child.Done()
	if took := time.Since(start); took < 30*time.Millisecond || took > time.Second {
		t.Errorf("child done after %s, want about 50ms", took)
	}
	if !errors.Is(child.Err(), context.DeadlineExceeded) || !errors.Is(c.Err(), context.DeadlineExceeded) {
		t.Errorf("errors %v, %v", child.Err(), c.Err())
	}
	c.End(nil)
	if !errors.Is(c.Err(), context.DeadlineExceeded) {
		t.Errorf("after End, Err changed to %v: it must stick", c.Err())
	}
}

// Err tells the deadline has passed even if nobody waited on Done.
func TestErrWithoutDone(t *testing.T) {
	var c lazyctx.Context
	c.InitDeadline(context.Background(), time.Now().Add(-time.Millisecond), nil, nil)
	if !errors.Is(c.Err(), context.DeadlineExceeded) {
		t.Errorf("Err() = %v", c.Err())
	}
	select {
	case <-c.Done():
	default:
		t.Error("Done not closed after Err said the deadline passed")
	}
}

// End cancels the context with its cause, whether or not anybody waited on
// it before; a child derived before End is canceled with the same cause,
// and so is a value child asked after End.
func TestEndCancelsWithItsCause(t *testing.T) {
	cause := errors.New("scope ended")
	for _, waited := range []bool{false, true} {
		var c lazyctx.Context
		c.Init(context.Background(), key{}, "v")
		if c.Value(key{}) != "v" {
			t.Fatal("Value(key) is not the value given to Init")
		}
		var child context.Context = context.WithValue(&c, "k", 1)
		if waited {
			var cancel context.CancelFunc
			child, cancel = context.WithCancel(child)
			defer cancel()
		}
		c.End(cause)
		c.End(errors.New("ignored"))
		if !errors.Is(child.Err(), context.Canceled) || context.Cause(child) != cause {
			t.Errorf("waited %v: child Err %v, Cause %v", waited, child.Err(), context.Cause(child))
		}
	}
}

// A child context attaches to the materialized standard context: creating
// it starts no goroutine, as it would for a parent of a type the context
// package does not know.
func TestChildrenStartNoGoroutine(t *testing.T) {
	var c lazyctx.Context
	c.InitDeadline(context.Background(), time.Now().Add(time.Hour), nil, nil)
	before := runtime.NumGoroutine()
	var cancels []context.CancelFunc
	for range 10 {
		_, cancel := context.WithCancel(&c)
		cancels = append(cancels, cancel)
	}
	if after := runtime.NumGoroutine(); after != before {
		t.Errorf("goroutines %d → %d for 10 children", before, after)
	}
	for _, cancel := range cancels {
		cancel()
	}
	c.End(nil)
}

// A parent canceled before is seen by Err, as the standard context sees it.
func TestParentCancellationIsSeen(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	var c lazyctx.Context
	c.Init(parent, nil, nil)
	cancel()
	if !errors.Is(c.Err(), context.Canceled) {
		t.Errorf("Err() = %v", c.Err())
	}
}

// A context ended with its own cause before its parent keeps that cause,
// as a standard context does, however late anybody asks.
func TestEndedChildKeepsItsCause(t *testing.T) {
	mine := errors.New("child's cause")
	var parent, child lazyctx.Context
	parent.Init(context.Background(), key{}, 1)
	child.Init(&parent, key{}, 2)
	child.End(mine)
	parent.End(nil)
	if got := context.Cause(&child); got != mine || !errors.Is(child.Err(), context.Canceled) {
		t.Errorf("Cause(child) = %v, Err %v; want %v, Canceled", got, child.Err(), mine)
	}
	if child.Value(key{}) != 2 || parent.Value(key{}) != 1 {
		t.Error("values lost")
	}
}

// A deadline that passed before the parent was canceled is the context's
// error even when nothing waited on the context before both happened, as
// context.WithDeadline's timer would have fired first: Err, the cause and
// Done agree, before and after End.
func TestDeadlineBeforeParentCancelIsDeadlineExceeded(t *testing.T) {
	for _, ended := range []bool{false, true} {
		parent, cancel := context.WithCancel(context.Background())
		var c lazyctx.Context
		c.InitDeadline(parent, time.Now().Add(50*time.Millisecond), nil, nil)
		time.Sleep(150 * time.Millisecond) // the deadline passes; nobody looks
		cancel()                           // then the client goes away
		if ended {
			c.End(nil)
		}
		time.Sleep(100 * time.Millisecond) // the handler fails later
		if err := c.Err(); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("ended %v: Err() = %v, want DeadlineExceeded", ended, err)
		}
		if cause := context.Cause(&c); !errors.Is(cause, context.DeadlineExceeded) {
			t.Errorf("ended %v: Cause = %v", ended, cause)
		}
		<-c.Done()
	}
}

// A parent canceled before the deadline, seen by Err before the deadline,
// is a cancellation.
func TestParentCancelBeforeDeadlineIsCanceled(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	var c lazyctx.Context
	c.InitDeadline(parent, time.Now().Add(time.Hour), nil, nil)
	cancel()
	if err := c.Err(); !errors.Is(err, context.Canceled) {
		t.Errorf("Err() = %v, want Canceled", err)
	}
	c.End(nil)
}
