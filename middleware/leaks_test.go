package middleware_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	ttmw "github.com/telltale-go/telltale/middleware"
	"github.com/telltale-go/telltale/transport"
	"github.com/telltale-go/telltale/vocab"
)

// countingUpstream serves size bytes and counts the connections it saw
// closed.
func countingUpstream(t *testing.T, size int) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var closed atomic.Int32
	payload := make([]byte, size)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(payload)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			closed.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &closed
}

// The incident's step 2, caught: a handler forgets to close a response body.
// When it returns, the leak is on its server span, naming the handler's own
// file and line, and the body is closed so that the connection is freed.
func TestLeakOnServerSpanWithHandlersLineAndRepaired(t *testing.T) {
	v := newEnv(t)
	upstream, closedConns := countingUpstream(t, 64<<10)
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp}))
	v.e.Use(ttmw.Leaks())

	var (
		leakFile string
		leakLine int
	)
	leaked := make(chan *http.Response, 1)
	v.e.GET("/leaky/:id", func(c echo.Context) error {
		req, err := http.NewRequestWithContext(c.Request().Context(), http.MethodGet, upstream.URL+"/data?token=secret", nil)
		if err != nil {
			return err
		}
		_, leakFile, leakLine, _ = runtime.Caller(0)
		resp, err := v.client.Do(req) // the leak: leakLine+1
		if err != nil {
			return err
		}
		leaked <- resp // kept reachable, so the scope, not the GC, finds it
		return c.String(http.StatusOK, "forgot to close")
	})
	v.e.GET("/tidy", func(c echo.Context) error {
		req, _ := http.NewRequestWithContext(c.Request().Context(), http.MethodGet, upstream.URL+"/data", nil)
		resp, err := v.client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return c.NoContent(http.StatusOK)
	})
	v.start(t)

	if code, _ := v.do(t, http.MethodGet, "/leaky/1", nil); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	resp := <-leaked
	s := v.serverSpan(t, "GET /leaky/:id")
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
	check := func(key string, want any) {
		t.Helper()
		got, ok := attrOf(ev, key)
		if !ok || got.AsInterface() != want {
			t.Errorf("event %s = %v, want %v", key, got.AsInterface(), want)
		}
	}
	check("code.file.path", leakFile)
	check("code.line.number", int64(leakLine+1))
	check(vocab.AttrLeakReason, string(transport.LeakOutOfScope))
	check(vocab.AttrLeakRepaired, true)
	if fn, _ := attrOf(ev, "code.function.name"); !strings.Contains(fn.AsString(), "TestLeakOnServerSpanWithHandlersLineAndRepaired") {
		t.Errorf("code.function.name = %q", fn.AsString())
	}
	if u, _ := attrOf(ev, "url.full"); strings.Contains(u.AsString(), "secret") {
		t.Errorf("url.full %q leaks a query value", u.AsString())
	}
	if s.Status().Code == codes.Error {
		t.Errorf("the request itself succeeded; span status %v", s.Status())
	}

	// Repaired: the body is closed, the transport tracks nothing, and the
	// connection it held is closed rather than stuck.
	if _, err := resp.Body.Read(make([]byte, 1)); !errors.Is(err, transport.ErrLeakRepaired) {
		t.Errorf("reading the leaked body: %v, want ErrLeakRepaired", err)
	}
	if st := v.tr.Stats(); st.Open != 0 || st.Leaked != 1 {
		t.Errorf("transport stats %+v, want 0 open, 1 leaked", st)
	}
	waitFor(t, "the leaked connection to be closed", func() bool { return closedConns.Load() >= 1 })

	// The tidy handler leaves nothing and gets no leak attribute.
	v.do(t, http.MethodGet, "/tidy", nil)
	s = v.serverSpan(t, "GET /tidy")
	if _, ok := attr(s, vocab.AttrLeaks); ok {
		t.Error("a handler that closed its body got telltale.leaks")
	}
	transport.VerifyNoOpenBodies(t, v.tr)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 5s for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The incident's step 4, caught: a handler starts goroutines that outlive
// the request. The monitor finds the one still blocked after the grace
// period, names its request, route and line, and reports it once as a span
// in the request's trace; one that finished, or one that is meant to live
// on, is not reported.
func TestLeakedGoroutineIsReported(t *testing.T) {
	v := newEnv(t)
	mon := ttmw.NewGoroutineMonitor(ttmw.GoroutineMonitorConfig{
		TracerProvider:  v.tp,
		Interval:        time.Millisecond,
		Grace:           30 * time.Millisecond,
		IgnoreFunctions: []string{"github.com/telltale-go/telltale/middleware_test.backgroundAudit"},
	})
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp}))
	v.e.Use(ttmw.LeaksWithConfig(ttmw.LeaksConfig{Goroutines: mon}))

	release := make(chan struct{})
	var stuckLine int
	var labels atomic.Value
	v.e.GET("/fanout/:id", func(c echo.Context) error {
		route, _ := pprof.Label(c.Request().Context(), vocab.LabelRoute)
		traceID, _ := pprof.Label(c.Request().Context(), vocab.LabelTraceID)
		labels.Store(route + " " + traceID)
		go func() { time.Sleep(time.Millisecond) }() // finishes in time
		go backgroundAudit(release)                  // meant to outlive the request
		_, _, stuckLine, _ = runtime.Caller(0)
		go func() { <-release }() // the orphan: stuckLine+1
		return c.NoContent(http.StatusOK)
	})
	v.start(t)
	defer close(release)

	v.do(t, http.MethodGet, "/fanout/1", nil)
	server := v.serverSpan(t, "GET /fanout/:id")
	if got, want := labels.Load(), "/fanout/:id "+server.SpanContext().TraceID().String(); got != want {
		t.Errorf("pprof labels in the handler: %q, want %q", got, want)
	}
	if orphans := mon.Check(); len(orphans) != 0 {
		t.Errorf("orphans reported within the grace period: %+v", orphans)
	}
	time.Sleep(60 * time.Millisecond)
	orphans := mon.Check()
	if len(orphans) != 1 {
		t.Fatalf("%d orphans, want 1: %+v", len(orphans), orphans)
	}
	o := orphans[0]
	if o.Route != "/fanout/:id" || o.Count != 1 || o.TraceID != server.SpanContext().TraceID().String() {
		t.Errorf("orphan %+v", o)
	}
	if !strings.Contains(o.Function, "TestLeakedGoroutineIsReported") || o.Blocked.Line != stuckLine+1 {
		t.Errorf("orphan started as %s, blocked at %s; want the handler's goroutine at line %d", o.Function, o.Blocked, stuckLine+1)
	}
	if o.RequestEnded.IsZero() || time.Since(o.RequestEnded) < 30*time.Millisecond {
		t.Errorf("request ended %v", o.RequestEnded)
	}

	span := v.waitSpan(t, func(s sdktrace.ReadOnlySpan) bool { return s.Name() == vocab.SpanGoroutineOrphaned }, "orphan span")
	if span.SpanContext().TraceID() != server.SpanContext().TraceID() || span.Parent().SpanID() != server.SpanContext().SpanID() {
		t.Error("the orphan span is not in the request's trace, under its server span")
	}
	if links := span.Links(); len(links) != 1 || links[0].SpanContext.SpanID() != server.SpanContext().SpanID() {
		t.Errorf("links %v, want the server span", links)
	}
	if st := mustAttr(t, span, "code.stacktrace").AsString(); !strings.Contains(st, "TestLeakedGoroutineIsReported") {
		t.Errorf("stack %q", st)
	}
	if got := mustAttr(t, span, "code.line.number").AsInt64(); got != int64(stuckLine+1) {
		t.Errorf("code.line.number = %d, want %d", got, stuckLine+1)
	}
	if span.Status().Code != codes.Error {
		t.Errorf("status %v", span.Status())
	}

	// Reported once, however often it is seen.
	time.Sleep(2 * time.Millisecond)
	if n := len(mon.Check()); n != 1 {
		t.Errorf("second check: %d orphans", n)
	}
	var spans int
	for _, s := range v.rec.Ended() {
		if s.Name() == vocab.SpanGoroutineOrphaned {
			spans++
		}
	}
	if spans != 1 {
		t.Errorf("%d orphan spans after two checks, want 1", spans)
	}
}

// backgroundAudit stands for work meant to outlive its request.
func backgroundAudit(release chan struct{}) { <-release }

// Start and Stop run and stop the periodic check; the package's goleak check
// proves the goroutine is gone.
func TestGoroutineMonitorStartStop(t *testing.T) {
	mon := ttmw.NewGoroutineMonitor(ttmw.GoroutineMonitorConfig{Interval: time.Millisecond})
	mon.Start()
	mon.Start()
	waitFor(t, "a periodic check", func() bool { return !mon.LastCheck().IsZero() })
	mon.Stop()
	mon.Stop()
	ttmw.NewGoroutineMonitor(ttmw.GoroutineMonitorConfig{}).Stop() // never started
}

// A monitor remembers a bounded number of ended requests; an orphan of a
// forgotten request is still reported, without its end time.
func TestGoroutineMonitorForgetsOldRequests(t *testing.T) {
	v := newEnv(t)
	mon := ttmw.NewGoroutineMonitor(ttmw.GoroutineMonitorConfig{Interval: time.Millisecond, Grace: time.Millisecond, History: 32})
	v.e.Use(ttmw.LeaksWithConfig(ttmw.LeaksConfig{Goroutines: mon}))
	release := make(chan struct{})
	defer close(release)
	v.e.GET("/orphan", func(c echo.Context) error {
		go func() { <-release }()
		return c.NoContent(http.StatusOK)
	})
	v.e.GET("/ok", func(c echo.Context) error { return c.NoContent(http.StatusOK) })
	v.start(t)

	v.do(t, http.MethodGet, "/orphan", nil)
	for range 100 {
		v.do(t, http.MethodGet, "/ok", nil)
	}
	time.Sleep(5 * time.Millisecond)
	orphans := mon.Check()
	if len(orphans) != 1 || orphans[0].Route != "/orphan" || !orphans[0].RequestEnded.IsZero() || orphans[0].TraceID != "" {
		t.Fatalf("orphans %+v, want the /orphan goroutine, end time forgotten, untraced", orphans)
	}
}
