package nethttp_test

import (
	"errors"
	"io"
	"net/http"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/internal/server"
	"github.com/telltale-go/telltale/middleware/nethttp"
	"github.com/telltale-go/telltale/transport"
	"github.com/telltale-go/telltale/vocab"
)

// A handler forgets to close a response body. When it returns, the leak is
// on its server span — a count, and a pointer naming the handler's own
// file and line — with the evidence on the call's client span, and the
// body is closed so that the connection is freed.
func TestLeakOnServerSpanWithHandlersLine(t *testing.T) {
	v := newEnv(t)
	upstream := payloadServer(t, 64<<10)
	var (
		leakFile string
		leakLine int
	)
	leaked := make(chan *http.Response, 1)
	v.mux.HandleFunc("GET /leaky/{id}", func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, upstream.URL+"/data?token=secret", nil)
		_, leakFile, leakLine, _ = runtime.Caller(0)
		resp, err := v.client.Do(req) // the leak: leakLine+1
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		leaked <- resp // kept reachable, so the scope, not the GC, finds it
		_, _ = io.WriteString(w, "forgot to close")
	})
	v.mux.HandleFunc("GET /tidy", func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, upstream.URL+"/data", nil)
		resp, err := v.client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
	})
	v.start(t, v.stack(v.mux))

	if got := v.do(t, http.MethodGet, "/leaky/1", nil); got.code != http.StatusOK {
		t.Fatalf("status %d", got.code)
	}
	resp := <-leaked
	s := v.serverSpan(t, "GET /leaky/{id}")
	if got := mustAttr(t, s, vocab.AttrLeaks).AsInt64(); got != 1 {
		t.Errorf("telltale.leaks = %d, want 1", got)
	}
	var events []sdktrace.Event
	for _, ev := range s.Events() {
		if ev.Name == vocab.EventBodyLeaked {
			events = append(events, ev)
		}
	}
	if len(events) != 1 {
		t.Fatalf("%d leak events on the server span, want 1", len(events))
	}
	ev := events[0].Attributes
	if file, _ := attrOf(ev, "code.file.path"); file.AsString() != leakFile {
		t.Errorf("code.file.path = %q, want %q", file.AsString(), leakFile)
	}
	if line, _ := attrOf(ev, "code.line.number"); line.AsInt64() != int64(leakLine+1) {
		t.Errorf("code.line.number = %d, want %d", line.AsInt64(), leakLine+1)
	}
	if reason, _ := attrOf(ev, vocab.AttrLeakReason); reason.AsString() != string(transport.LeakOutOfScope) {
		t.Errorf("reason = %q", reason.AsString())
	}
	for _, key := range []string{"code.stacktrace", "url.full", vocab.AttrLeakRepaired} {
		if _, ok := attrOf(ev, key); ok {
			t.Errorf("the server span's leak event carries %s: the evidence belongs on the client span", key)
		}
	}
	if s.Status().Code == codes.Error {
		t.Errorf("the request itself succeeded; span status %v", s.Status())
	}

	client := v.clientSpan(t)
	var clientEvent []attribute.KeyValue
	for _, e := range client.Events() {
		if e.Name == vocab.EventBodyLeaked {
			clientEvent = e.Attributes
		}
	}
	if st, _ := attrOf(clientEvent, "code.stacktrace"); !strings.Contains(st.AsString(), "TestLeakOnServerSpanWithHandlersLine") {
		t.Errorf("the client span's leak event has no stack naming the handler: %v", clientEvent)
	}
	if rep, _ := attrOf(clientEvent, vocab.AttrLeakRepaired); !rep.AsBool() {
		t.Errorf("the client span's leak event: repaired = %v, want true", rep.Emit())
	}
	if u, _ := attrOf(clientEvent, "url.full"); strings.Contains(u.AsString(), "secret") || u.AsString() == "" {
		t.Errorf("url.full %q: want it, redacted", u.AsString())
	}
	if _, err := resp.Body.Read(make([]byte, 1)); !errors.Is(err, transport.ErrLeakRepaired) {
		t.Errorf("reading the leaked body: %v, want ErrLeakRepaired", err)
	}

	// A handler that closed its body gets no leak attribute.
	v.do(t, http.MethodGet, "/tidy", nil)
	if _, ok := attr(v.serverSpan(t, "GET /tidy"), vocab.AttrLeaks); ok {
		t.Error("a handler that closed its body got telltale.leaks")
	}
	transport.VerifyNoOpenBodies(t, v.tr)
}

// A handler that leaks and then panics has its leak reported and repaired
// all the same.
func TestLeaksEndWhenTheHandlerPanics(t *testing.T) {
	v := newEnv(t)
	upstream := payloadServer(t, 1<<10)
	leaked := make(chan *http.Response, 1)
	v.mux.HandleFunc("GET /panic", func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, upstream.URL, nil)
		resp, err := v.client.Do(req)
		if err == nil {
			leaked <- resp
		}
		panic("before closing the body")
	})
	v.start(t, recoverer(v.stack(v.mux)))

	if got := v.do(t, http.MethodGet, "/panic", nil); got.code != http.StatusInternalServerError {
		t.Fatalf("status %d", got.code)
	}
	resp := <-leaked
	s := v.waitSpan(t, func(s sdktrace.ReadOnlySpan) bool { return s.SpanKind() == trace.SpanKindServer }, "server span")
	if got := mustAttr(t, s, vocab.AttrLeaks).AsInt64(); got != 1 {
		t.Errorf("telltale.leaks = %d, want 1", got)
	}
	if _, err := resp.Body.Read(make([]byte, 1)); !errors.Is(err, transport.ErrLeakRepaired) {
		t.Errorf("reading the leaked body: %v, want ErrLeakRepaired", err)
	}
}

// fakeClock is a monitor's clock that moves only when the test moves it:
// the goroutines a test leaves are real, only the monitor's idea of how long
// ago their request ended is not.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

// newFakeClock gives mon a fake clock and returns it.
func newFakeClock(mon *nethttp.GoroutineMonitor) *fakeClock {
	c := &fakeClock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	server.SetMonitorClock(mon, c.Now)
	return c
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// A goroutine a handler leaves running is found by the monitor, in the
// request's trace, with the route Leaks learnt from the mux below it once
// the handler returned.
func TestLeaksGivesTheMonitorTheRouteLearntAfter(t *testing.T) {
	v := newEnv(t)
	mon := nethttp.NewGoroutineMonitor(nethttp.GoroutineMonitorConfig{TracerProvider: v.tp, Grace: time.Second})
	clock := newFakeClock(mon)
	release := make(chan struct{})
	defer close(release)
	v.mux.HandleFunc("GET /fanout/{id}", func(w http.ResponseWriter, r *http.Request) {
		go func() { <-release }() // the orphan
		w.WriteHeader(http.StatusNoContent)
	})
	v.start(t, v.trace()(nethttp.LeaksWithConfig(nethttp.LeaksConfig{Goroutines: mon})(v.mux)))

	v.do(t, http.MethodGet, "/fanout/1", nil)
	s := v.serverSpan(t, "GET /fanout/{id}")
	clock.Advance(2 * time.Second)
	orphans := mon.Check()
	if len(orphans) != 1 {
		t.Fatalf("%d orphans, want 1: %+v", len(orphans), orphans)
	}
	if o := orphans[0]; o.Route != "GET /fanout/{id}" || o.TraceID != s.SpanContext().TraceID().String() {
		t.Errorf("orphan %+v", o)
	}
}

// With ProfileLabels, the handler's goroutine is labelled with its trace
// id, and with its route when Leaks is inside the mux, where the route is
// known before the handler runs.
func TestLeaksProfileLabels(t *testing.T) {
	v := newEnv(t)
	got := make(chan string, 1)
	labelled := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route, _ := pprof.Label(r.Context(), vocab.LabelRoute)
		traceID, _ := pprof.Label(r.Context(), vocab.LabelTraceID)
		got <- route + " " + traceID
		w.WriteHeader(http.StatusNoContent)
	})
	labels := nethttp.LeaksWithConfig(nethttp.LeaksConfig{ProfileLabels: true})
	v.mux.Handle("GET /inside/{id}", labels(labelled))
	v.mux.Handle("GET /outside/{id}", labelled)
	outside := labels(v.mux)
	v.start(t, v.trace()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/outside/") {
			outside.ServeHTTP(w, r)
			return
		}
		v.mux.ServeHTTP(w, r)
	})))

	for _, c := range []struct{ path, span, route string }{
		{"/inside/1", "GET /inside/{id}", "GET /inside/{id}"},
		{"/outside/1", "GET /outside/{id}", ""},
	} {
		v.do(t, http.MethodGet, c.path, nil)
		l := <-got
		s := v.serverSpan(t, c.span)
		if want := c.route + " " + s.SpanContext().TraceID().String(); l != want {
			t.Errorf("%s: labels %q, want %q", c.path, l, want)
		}
	}
}

// A GoroutineMonitor not made by NewGoroutineMonitor is refused by
// ToMiddleware, with an error saying so.
func TestLeaksRejectsZeroMonitor(t *testing.T) {
	_, err := nethttp.LeaksConfig{Goroutines: &nethttp.GoroutineMonitor{}}.ToMiddleware()
	if err == nil || !strings.HasPrefix(err.Error(), "nethttp: Leaks: ") || !strings.Contains(err.Error(), "NewGoroutineMonitor") {
		t.Errorf("ToMiddleware with a zero GoroutineMonitor: err = %v", err)
	}
}
