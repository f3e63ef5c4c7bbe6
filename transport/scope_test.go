package transport_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/telltale-go/telltale/transport"
	"github.com/telltale-go/telltale/vocab"
)

// When a scope ends, each body opened under it and still open is reported
// as out of scope, naming the line that made the request, and repaired: a
// late Read says why the body is gone. Bodies closed in time are not.
func TestScopeEndReportsAndRepairsOpenBodies(t *testing.T) {
	for _, p := range protos {
		t.Run(p.name, func(t *testing.T) {
			srv := tlsServer(t, p.h2, payloadHandler(1<<20))
			e := newEnv(t, hardenedFor(srv))
			ctx, scope := transport.WithScope(context.Background())
			drainClose(get(t, e.client, ctx, srv.URL))
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
			leaked, err := e.client.Do(req)
			file, line := here()
			line--
			if err != nil {
				t.Fatal(err)
			}
			if _, err := leaked.Body.Read(make([]byte, 10)); err != nil {
				t.Fatal(err)
			}
			leaks := scope.End()
			if len(leaks) != 1 {
				t.Fatalf("scope.End() = %d leaks, want 1", len(leaks))
			}
			l := leaks[0]
			if l.Reason != transport.LeakOutOfScope || !l.Repaired || l.CallSite.File != file || l.CallSite.Line != line {
				t.Errorf("leak = %+v, want out_of_scope, repaired, at %s:%d", l, file, line)
			}
			if again := scope.End(); again != nil {
				t.Errorf("second End() = %v, want nil", again)
			}
			if _, err := leaked.Body.Read(make([]byte, 10)); !errors.Is(err, transport.ErrLeakRepaired) {
				t.Errorf("Read after repair: %v, want ErrLeakRepaired", err)
			}
			if err := leaked.Body.Close(); err != nil {
				t.Errorf("Close after repair: %v", err)
			}
			spans := e.waitEnded(t, 2)
			checkCallSite(t, event(t, spans[1], vocab.EventBodyLeaked), file, line)
			// The stream (h2) or connection (h1) is gone: the next request works.
			drainClose(get(t, e.client, context.Background(), srv.URL))
			transport.VerifyNoOpenBodies(t, e.tr)
		})
	}
}

// Work meant to outlive its request detaches as Go code does, with
// context.WithoutCancel (alone or under a timeout of its own): its body is
// not bound to the scope, is read to its end after the scope ended, and is
// not a leak. The same scope still reports the body a non-detached context
// left open, even one under a shorter deadline of its own.
func TestDetachedWorkOutlivesTheScope(t *testing.T) {
	srv := payloadServer(t, 64<<10)
	e := newEnv(t, nil)
	ctx, scope := transport.WithScope(context.Background())

	detached := get(t, e.client, context.WithoutCancel(ctx), srv.URL)
	withTimeout, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	detachedTimed := get(t, e.client, withTimeout, srv.URL)
	shorter, cancel2 := context.WithTimeout(ctx, time.Minute)
	defer cancel2()
	bound := get(t, e.client, shorter, srv.URL)

	leaks := scope.End()
	if len(leaks) != 1 {
		t.Fatalf("%d leaks, want the one bound body: %+v", len(leaks), leaks)
	}
	if _, err := bound.Body.Read(make([]byte, 1)); !errors.Is(err, transport.ErrLeakRepaired) {
		t.Errorf("bound body after the scope: %v", err)
	}
	for name, resp := range map[string]*http.Response{"WithoutCancel": detached, "WithTimeout(WithoutCancel)": detachedTimed} {
		b, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil || len(b) != 64<<10 {
			t.Errorf("%s: read %d bytes after the scope ended, %v", name, len(b), err)
		}
	}
	if st := e.tr.Stats(); st.Leaked != 1 || st.Open != 0 {
		t.Errorf("stats %+v", st)
	}
	_ = bound.Body.Close()
}

// The scope's context is canceled when the scope ends, as net/http cancels
// a request's context when its handler returns.
func TestScopeEndCancelsItsContext(t *testing.T) {
	ctx, scope := transport.WithScope(context.Background())
	child, cancel := context.WithCancel(ctx)
	defer cancel()
	if ctx.Err() != nil || child.Err() != nil {
		t.Fatal("done before the scope ended")
	}
	scope.End()
	select {
	case <-child.Done():
	case <-time.After(time.Second):
		t.Fatal("a child of the scope's context is not done after End")
	}
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Errorf("Err() = %v", ctx.Err())
	}
}

// Read, two Closes and the scope's end racing on one body: the body is
// accounted for exactly once.
func TestConcurrentCloseReadAndScopeEnd(t *testing.T) {
	srv := payloadServer(t, 128<<10)
	e := newEnv(t, nil)
	for range 50 {
		ctx, scope := transport.WithScope(context.Background())
		resp := get(t, e.client, ctx, srv.URL)
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				switch i {
				case 0:
					_, _ = io.Copy(io.Discard, resp.Body)
				case 1, 2:
					_ = resp.Body.Close()
				case 3:
					scope.End()
				}
			})
		}
		wg.Wait()
	}
	if n := len(e.waitEnded(t, 50)); n != 50 {
		t.Errorf("%d spans ended for 50 requests", n)
	}
	if opened := e.sum(t, vocab.MetricBodiesOpen, attribute.KeyValue{}); opened != 0 {
		t.Errorf("open bodies metric = %d, want 0", opened)
	}
	transport.VerifyNoOpenBodies(t, e.tr)
}

// A body under the handler's own timeout, which its deferred cancel ended
// before the scope did, is dead all the same: the scope reports it.
func TestScopeReportsBodiesUnderTheHandlersOwnCancel(t *testing.T) {
	srv := payloadServer(t, 1<<20)
	e := newEnv(t, nil)
	ctx, scope := transport.WithScope(context.Background())
	var kept *http.Response
	func() { // the handler
		callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		kept = get(t, e.client, callCtx, srv.URL)
		_, _ = kept.Body.Read(make([]byte, 10))
	}()
	if leaks := scope.End(); len(leaks) != 1 {
		t.Errorf("scope.End() = %d leaks for a body left open under the handler's own timeout", len(leaks))
	}
	_ = kept.Body.Close()
}
