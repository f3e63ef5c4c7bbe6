package transport_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/telltale-go/telltale/transport"
	"github.com/telltale-go/telltale/vocab"
)

func checkCallSite(t *testing.T, ev sdktrace.Event, file string, line int) {
	t.Helper()
	f, _ := attrOf(ev.Attributes, "code.file.path")
	l, _ := attrOf(ev.Attributes, "code.line.number")
	if f.AsString() != file || int(l.AsInt64()) != line {
		t.Errorf("leak call site = %s:%d, want %s:%d", f.AsString(), l.AsInt64(), file, line)
	}
}

// collectLeaks runs the collector until n bodies have been reported as
// leaked, and returns the ended spans, each checked to have status Error.
func collectLeaks(t *testing.T, e *env, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	eventually(t, "the collector to find the leaks", func() bool {
		runtime.GC()
		return e.tr.Stats().Leaked >= int64(n)
	})
	spans := e.waitEnded(t, n)
	for _, s := range spans {
		if s.Status().Code != codes.Error || errorType(s) != vocab.ErrorBodyLeaked {
			t.Errorf("leaked span: status %v, error.type %q", s.Status(), errorType(s))
		}
	}
	return spans
}

// waitGoroutines waits until the number of goroutines is at most n.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutines: %d, want at most the baseline %d\n%s", runtime.NumGoroutine(), n, buf)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

// forget makes a request and drops the body without closing it; it returns
// the line of the request.
//
//go:noinline
func forget(t *testing.T, c *http.Client, url string) (string, int) {
	resp, err := c.Get(url)
	file, line := here()
	line--
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.StatusCode
	return file, line
}

// A body the application drops without closing is found by the garbage
// collector and reported on its span, naming the line that made the
// request, counted, logged once — without the query's values — and
// repaired: its connection and the goroutines behind it are freed.
func TestForgottenBodyIsReportedWhenUnreachable(t *testing.T) {
	for _, p := range protos {
		t.Run(p.name, func(t *testing.T) {
			srv := tlsServer(t, p.h2, payloadHandler(1<<20)) // larger than socket buffers and h2 windows
			logs := &syncBuffer{}
			e := newEnv(t, hardenedFor(srv), transport.WithLogger(slogTo(logs)))
			baseline := runtime.NumGoroutine()

			const leaks = 10
			var file string
			var line int
			for range leaks {
				file, line = forget(t, e.client, srv.URL+"/items?token=s3cret")
			}
			for _, s := range collectLeaks(t, e, leaks) {
				ev := event(t, s, vocab.EventBodyLeaked)
				checkCallSite(t, ev, file, line)
				if r, _ := attrOf(ev.Attributes, vocab.AttrLeakReason); r.AsString() != string(transport.LeakUnreachable) {
					t.Errorf("reason = %q, want unreachable", r.AsString())
				}
				for _, a := range append(s.Attributes(), ev.Attributes...) {
					if strings.Contains(a.Value.String(), "s3cret") {
						t.Errorf("%s leaks the query value: %s", a.Key, a.Value.String())
					}
				}
			}
			if got := e.sum(t, vocab.MetricBodiesLeaked, attribute.String(vocab.AttrLeakReason, "unreachable")); got != leaks {
				t.Errorf("%s = %d, want %d", vocab.MetricBodiesLeaked, got, leaks)
			}
			if got := e.sum(t, vocab.MetricBodiesLeaked, attribute.String("server.address", "127.0.0.1")); got != leaks {
				t.Errorf("%s{server.address=127.0.0.1} = %d, want %d", vocab.MetricBodiesLeaked, got, leaks)
			}
			if got := e.sum(t, vocab.MetricBodiesOpen, attribute.KeyValue{}); got != 0 {
				t.Errorf("%s = %d after repair, want 0", vocab.MetricBodiesOpen, got)
			}
			if n := strings.Count(logs.String(), "response body leaked"); n != leaks || strings.Contains(logs.String(), "s3cret") {
				t.Errorf("%d leak warnings, want %d, without the query value:\n%s", n, leaks, logs)
			}
			e.tr.CloseIdleConnections()
			waitGoroutines(t, baseline)
		})
	}
}

// A leak report leaves the body as the application left it when the
// Transport is report-only.
func TestReportOnlyLeavesLeakedBodyOpen(t *testing.T) {
	srv := payloadServer(t, 1<<10)
	e := newEnv(t, nil, transport.WithReportOnly())
	ctx, scope := transport.WithScope(context.Background())
	resp := get(t, e.client, ctx, srv.URL)
	leaks := scope.End()
	if len(leaks) != 1 || leaks[0].Repaired {
		t.Fatalf("leaks = %+v, want one, not repaired", leaks)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil || len(b) != 1<<10 {
		t.Fatalf("read %d bytes, err %v; want 1024, nil", len(b), err)
	}
	_ = resp.Body.Close()
	if n := len(e.waitEnded(t, 1)); n != 1 {
		t.Fatalf("%d spans ended, want 1 (ended once, by the leak)", n)
	}
}

// A body open longer than WithMaxBodyAge is reported as too old; a
// long-lived one is not.
func TestTooOldBodyIsReported(t *testing.T) {
	srv := payloadServer(t, 64<<10)
	e := newEnv(t, nil, transport.WithMaxBodyAge(50*time.Millisecond))
	stream := get(t, e.client, transport.LongLived(context.Background()), srv.URL)
	defer stream.Body.Close()
	resp := get(t, e.client, context.Background(), srv.URL)
	defer resp.Body.Close()
	ev := event(t, e.waitEnded(t, 1)[0], vocab.EventBodyLeaked)
	if r, _ := attrOf(ev.Attributes, vocab.AttrLeakReason); r.AsString() != string(transport.LeakTooOld) {
		t.Errorf("reason = %q, want too_old", r.AsString())
	}
	if age, _ := attrOf(ev.Attributes, vocab.AttrLeakAge); age.Type() != attribute.INT64 || age.AsInt64() < 50 {
		t.Errorf("age = %v, want at least 50 whole milliseconds", age.Emit())
	}
	time.Sleep(100 * time.Millisecond)
	if st := e.tr.Stats(); st.Leaked != 1 || st.Open != 1 {
		t.Errorf("stats %+v: the long-lived body must stay open, unreported", st)
	}
}

// Close reports the bodies still open — tracked or past the tracking cap —
// and ends their spans, so that shutting down the tracer provider next
// exports every span.
func TestCloseReportsOpenBodiesAndLosesNoSpan(t *testing.T) {
	srv := payloadServer(t, 64<<10)
	exp := &keepingExporter{}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp)) // a real, batching pipeline
	tr := transport.New(nil, transport.WithTracerProvider(tp), transport.WithLogger(discardLogger()),
		transport.WithMaxTrackedBodies(1))
	c := tr.Client()
	drainClose(get(t, c, context.Background(), srv.URL))
	a := get(t, c, context.Background(), srv.URL) // tracked
	b := get(t, c, context.Background(), srv.URL) // past the cap
	if st := tr.Stats(); st.Untracked != 1 {
		t.Fatalf("stats = %+v, want 1 untracked", st)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := exp.exported()
	var leaked int
	for _, s := range spans {
		for _, ev := range s.Events() {
			if ev.Name == vocab.EventBodyLeaked {
				leaked++
				if r, _ := attrOf(ev.Attributes, vocab.AttrLeakReason); r.AsString() != string(transport.LeakOpenAtClose) {
					t.Errorf("reason %q, want open_at_close", r.AsString())
				}
			}
		}
	}
	if len(spans) != 3 || leaked != 2 {
		t.Errorf("exported %d spans with %d leak events, want 3 and 2", len(spans), leaked)
	}
	_ = a.Body.Close()
	_ = b.Body.Close()
	if err := tr.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
}

type readResult struct {
	n   int
	err error
}

// readOnce makes one Read; r is not used after it.
//
//go:noinline
func readOnce(r io.Reader, res chan<- readResult) {
	buf := make([]byte, 64)
	n, err := r.Read(buf)
	res <- readResult{n, err}
}

// A body blocked in Read, held only as the receiver of that call, is not
// unreachable: it is not reported, and its Read returns the data.
func TestBodyBeingReadIsNotReportedUnreachable(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select { // a slow upstream: the body comes later
		case <-release:
		case <-r.Context().Done():
		}
		_, _ = w.Write([]byte("0123456789"))
	}))
	defer srv.Close()
	var once sync.Once
	defer once.Do(func() { close(release) })
	e := newEnv(t, nil)

	res := make(chan readResult, 1)
	func() {
		resp := get(t, e.client, context.Background(), srv.URL)
		go readOnce(resp.Body, res)
	}()
	time.Sleep(50 * time.Millisecond) // the Read is blocked on the network
	for range 20 {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	leakedWhileReading := e.tr.Stats().Leaked
	once.Do(func() { close(release) })
	r := <-res
	if leakedWhileReading != 0 {
		t.Errorf("a body blocked in Read was reported as leaked (%d leaks)", leakedWhileReading)
	}
	if r.err != nil && r.err != io.EOF || r.n != 10 {
		t.Errorf("Read = %d, %v; want 10 bytes", r.n, r.err)
	}
}

// blockingHandler is a slog handler stuck on a slow sink until release.
type blockingHandler struct {
	entered chan string // the stack of the goroutine that logs
	release chan struct{}
	once    *sync.Once
}

func (h blockingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h blockingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h blockingHandler) WithGroup(string) slog.Handler            { return h }
func (h blockingHandler) Handle(context.Context, slog.Record) error {
	h.once.Do(func() {
		buf := make([]byte, 64<<10)
		h.entered <- string(buf[:runtime.Stack(buf, false)])
	})
	<-h.release
	return nil
}

// A leak found by the garbage collector is reported on a goroutine of its
// own, not on the runtime's cleanup goroutine, which the whole process
// shares: a slow log sink or exporter cannot stall the process's other
// cleanups.
func TestLeakReportDoesNotRunOnTheRuntimeCleanupGoroutine(t *testing.T) {
	srv := payloadServer(t, 64<<10)
	h := blockingHandler{entered: make(chan string, 1), release: make(chan struct{}), once: &sync.Once{}}
	e := newEnv(t, nil, transport.WithLogger(slog.New(h)))
	var release sync.Once
	defer release.Do(func() { close(h.release) })

	forget(t, e.client, srv.URL)
	var stack string
	eventually(t, "the forgotten body to be reported", func() bool {
		runtime.GC()
		select {
		case stack = <-h.entered:
			return true
		case <-time.After(10 * time.Millisecond):
			return false
		}
	})
	if strings.Contains(stack, "runtime.runCleanups") || strings.Contains(stack, "runtime.unique_runtime") {
		t.Errorf("the leak is reported on the runtime's cleanup goroutine:\n%s", stack)
	}
	other := make(chan struct{})
	func() {
		obj := &struct {
			p *int
			_ [64]byte
		}{p: new(int)}
		runtime.AddCleanup(obj, func(c chan struct{}) { close(c) }, other)
	}()
	eventually(t, "another package's cleanup to run while a leak report is blocked", func() bool {
		runtime.GC()
		select {
		case <-other:
			return true
		case <-time.After(10 * time.Millisecond):
			return false
		}
	})
	release.Do(func() { close(h.release) })
	e.waitEnded(t, 1)
}
