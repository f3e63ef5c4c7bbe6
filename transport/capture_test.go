package transport_test

import (
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/telltale-go/telltale/internal/faulty"
	"github.com/telltale-go/telltale/transport"
)

// RoundTrip captures a short stack first, and the whole stack only when the
// short one does not reach the application's frame: the call site is the
// application's line however deep in a library the call is made, and
// whether the short stack was seen before or not.
func TestCallSiteThroughADeepLibrary(t *testing.T) {
	srv := holdOpen(t)
	e := newEnv(t, nil, transport.WithCallSiteSkip("github.com/telltale-go/telltale/internal/faulty"))
	for _, frames := range []int{0, 3, 8, 20, 20, 0} {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = faulty.CallThrough(ctx, e.client, srv.URL, frames) // blocks reading the held body
		}()
		_, callerLine := here()
		callerLine -= 2
		eventually(t, "the body to be open", func() bool { return len(e.tr.OpenBodies(0)) == 1 })
		b := e.tr.OpenBodies(0)[0]
		if !strings.HasSuffix(b.CallSite.File, "capture_test.go") || b.CallSite.Line != callerLine {
			t.Errorf("%d frames deep: call site %s, want capture_test.go:%d; stack:\n%s", frames, b.CallSite, callerLine, b.Stack)
		}
		cancel()
		<-done
		eventually(t, "the body to end", func() bool { return len(e.tr.OpenBodies(0)) == 0 })
	}
}

// BenchmarkCapture compares capturing a call's stack from as deep as an
// Echo handler sends it (21 frames: the handler is 16 deep, Client.Do
// adds 4, a helper 1) walked whole to its depth limit, as RoundTrip did,
// or short first, as it does.
func BenchmarkCapture(b *testing.B) {
	tr := transport.New(nil)
	defer tr.Close()
	for _, walk := range []string{"whole", "short"} {
		b.Run("walk="+walk, func(b *testing.B) {
			atDepth(handlerDepth+5, func() {
				n := 0
				for b.Loop() {
					if walk == "whole" {
						n = transport.CaptureWhole()
					} else {
						n = transport.CaptureShort(tr)
					}
				}
				if n == 0 {
					b.Fatal("nothing captured")
				}
			})
		})
	}
}

// atDepth calls f at depth frames deep in its goroutine's stack.
//
//go:noinline
func atDepth(depth int, f func()) {
	if runtime.Callers(1, make([]uintptr, depth)) < depth {
		atDepth(depth, f)
		return
	}
	f()
}
