package middleware_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/telltale-go/telltale/internal/testkit"
	ttmw "github.com/telltale-go/telltale/middleware"
	"github.com/telltale-go/telltale/sampling"
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
	if fn, _ := attrOf(ev, "code.function.name"); !strings.Contains(fn.AsString(), "TestLeakOnServerSpanWithHandlersLineAndRepaired") {
		t.Errorf("code.function.name = %q", fn.AsString())
	}
	// The server span points to the evidence; the client span holds it,
	// stack included: one copy of a stack per trace.
	for _, key := range []string{"code.stacktrace", "url.full", vocab.AttrLeakRepaired} {
		if _, ok := attrOf(ev, key); ok {
			t.Errorf("the server span's leak event carries %s: the evidence belongs on the client span", key)
		}
	}
	client := v.waitSpan(t, func(s sdktrace.ReadOnlySpan) bool { return s.SpanKind().String() == "client" }, "the leaked call's client span")
	var clientEvent []attribute.KeyValue
	for _, e := range client.Events() {
		if e.Name == vocab.EventBodyLeaked {
			clientEvent = e.Attributes
		}
	}
	if st, _ := attrOf(clientEvent, "code.stacktrace"); !strings.Contains(st.AsString(), "TestLeakOnServerSpanWithHandlersLineAndRepaired") {
		t.Errorf("the client span's leak event has no stack naming the handler: %v", clientEvent)
	}
	if rep, _ := attrOf(clientEvent, vocab.AttrLeakRepaired); !rep.AsBool() {
		t.Errorf("the client span's leak event: repaired = %v, want true", rep.Emit())
	}
	if u, _ := attrOf(clientEvent, "url.full"); strings.Contains(u.AsString(), "secret") || u.AsString() == "" {
		t.Errorf("url.full %q: want it, redacted", u.AsString())
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
	eventually(t, "the leaked connection to be closed", func() bool { return closedConns.Load() >= 1 })

	// The tidy handler leaves nothing and gets no leak attribute.
	v.do(t, http.MethodGet, "/tidy", nil)
	s = v.serverSpan(t, "GET /tidy")
	if _, ok := attr(s, vocab.AttrLeaks); ok {
		t.Error("a handler that closed its body got telltale.leaks")
	}
	transport.VerifyNoOpenBodies(t, v.tr)
}

// The handler is labelled for profiles only when asked: with
// ProfileLabels, its route and trace id; without, and without a goroutine
// monitor, not at all.
func TestLeaksProfileLabels(t *testing.T) {
	for _, profile := range []bool{false, true} {
		v := newEnv(t)
		v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp}))
		v.e.Use(ttmw.LeaksWithConfig(ttmw.LeaksConfig{ProfileLabels: profile}))
		got := make(chan string, 1)
		v.e.GET("/users/:id", func(c echo.Context) error {
			route, _ := pprof.Label(c.Request().Context(), vocab.LabelRoute)
			traceID, _ := pprof.Label(c.Request().Context(), vocab.LabelTraceID)
			got <- route + " " + traceID
			return c.NoContent(http.StatusOK)
		})
		v.start(t)
		v.do(t, http.MethodGet, "/users/1", nil)
		labels := <-got
		server := v.serverSpan(t, "GET /users/:id")
		want := " "
		if profile {
			want = "/users/:id " + server.SpanContext().TraceID().String()
		}
		if labels != want {
			t.Errorf("ProfileLabels %v: labels %q, want %q", profile, labels, want)
		}
	}
}

// A GoroutineMonitor not made by NewGoroutineMonitor is refused by
// ToMiddleware, with an error saying so.
func TestLeaksRejectsZeroMonitor(t *testing.T) {
	_, err := ttmw.LeaksConfig{Goroutines: &ttmw.GoroutineMonitor{}}.ToMiddleware()
	if err == nil || !strings.Contains(err.Error(), "NewGoroutineMonitor") {
		t.Errorf("ToMiddleware with a zero GoroutineMonitor: err = %v", err)
	}
}

// A request the budget refused is refused for good: a body it leaked and
// the garbage collector finds later is not exported, alone or with its
// request, nor counted again; and its leak is not logged one by one — the
// sampler's summary counts it — while an exported one's log line says its
// trace is in the trace backend.
func TestRefusedRequestStaysRefused(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	samplerLogs, transportLogs := &testkit.SyncBuffer{}, &testkit.SyncBuffer{}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	tp := sampling.NewTracerProvider(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0)), sampling.WithBudget(1),
		sampling.WithLogger(testkit.Logger(samplerLogs)), sampling.WithMeterProvider(mp), sdktrace.WithSpanProcessor(rec))
	v := newEnvWith(t, rec, tp, transport.WithLogger(testkit.Logger(transportLogs)))
	v.stack(time.Second, nil)
	upstream := payloadServer(t)
	seen := make(seenIDs, 3)
	v.e.GET("/fail", func(c echo.Context) error {
		seen.note(c)
		// Detached, so that the scope leaves the body to the collector.
		req, _ := http.NewRequestWithContext(context.WithoutCancel(c.Request().Context()), http.MethodGet, upstream.URL, nil)
		resp, err := v.client.Do(req)
		if err != nil {
			return err
		}
		_ = resp.StatusCode // dropped unclosed
		return c.NoContent(http.StatusBadGateway)
	})
	v.start(t)
	var ids []trace.TraceID
	for range 3 { // the first is admitted, the next two refused
		v.do(t, http.MethodGet, "/fail", nil)
		ids = append(ids, (<-seen).TraceID())
	}
	dropped := func() int64 {
		var rm metricdata.ResourceMetrics
		_ = reader.Collect(context.Background(), &rm)
		var n int64
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if m.Name == vocab.MetricAnomalyTracesDropped {
					for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
						n += dp.Value
					}
				}
			}
		}
		return n
	}
	before := dropped()
	eventually(t, "the collector to find the three leaked bodies", func() bool {
		runtime.GC()
		return v.tr.Stats().Leaked == 3
	})
	time.Sleep(50 * time.Millisecond)
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID() != ids[0] {
			t.Errorf("a span of a refused request was exported: %s", s.Name())
		}
	}
	if after := dropped(); after != before || before != 2 {
		t.Errorf("%s = %d before the late leaks, %d after: want 2 and 2", vocab.MetricAnomalyTracesDropped, before, after)
	}
	_ = tp.Shutdown(context.Background()) // flushes the sampler's summary
	logged := transportLogs.String()
	if n := strings.Count(logged, "response body leaked"); n != 1 || !strings.Contains(logged, "trace_id="+ids[0].String()) || !strings.Contains(logged, "in_trace_backend=true") {
		t.Errorf("transport's leak lines: want one, the exported request's, in the trace backend:\n%s", logged)
	}
	if !strings.Contains(samplerLogs.String(), "not in the trace backend") || !strings.Contains(samplerLogs.String(), "refused=2") {
		t.Errorf("the sampler's summary does not count the 2 refused requests:\n%s", samplerLogs)
	}
}

// A flood of one anomaly — a route leaking on every request, 300 requests
// from 16 clients at once — under the default budget does not hide a rare,
// different one: a 500 on another route in the middle of the flood is
// exported, its trace whole, when its request ends; the flood's traces are
// exported within the budget, and the rest counted, by kind, as refused.
func TestFloodOfOneAnomalyDoesNotHideAnother(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	tp := sampling.NewTracerProvider(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0)),
		sampling.WithLogger(slog.New(slog.DiscardHandler)), sampling.WithMeterProvider(mp), sdktrace.WithSpanProcessor(rec))
	v := newEnvWith(t, rec, tp)
	v.stack(time.Second, nil)
	upstream := payloadServer(t)
	var leakIDs sync.Map
	v.e.GET("/count", func(c echo.Context) error {
		leakIDs.Store(trace.SpanContextFromContext(c.Request().Context()).TraceID(), true)
		req, _ := http.NewRequestWithContext(c.Request().Context(), http.MethodGet, upstream.URL, nil)
		resp, err := v.client.Do(req) //nolint:bodyclose // the leak under test
		if err != nil {
			return err
		}
		return c.String(http.StatusOK, resp.Header.Get("Content-Length"))
	})
	rare := make(seenIDs, 1)
	v.e.GET("/feed", func(c echo.Context) error {
		rare.note(c)
		return errors.New("the feed's store is down")
	})
	v.start(t)

	const floodSize, clients = 300, 16
	next := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				v.do(t, http.MethodGet, "/count", nil)
			}
		}()
	}
	for i := range floodSize {
		if i == floodSize/2 {
			if code, _ := v.do(t, http.MethodGet, "/feed", nil); code != http.StatusInternalServerError {
				t.Errorf("/feed answered %d", code)
			}
		}
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)

	rareID := (<-rare).TraceID()
	server := v.exported(t, rareID, 1)[0]
	if server.Name() != "GET /feed" || server.Status().Code != codes.Error {
		t.Errorf("the rare anomaly's span: %q %v", server.Name(), server.Status())
	}
	// Each request is decided when it ends, which is after its answer.
	counted := map[string]int64{}
	eventually(t, "every leaking request to be decided", func() bool {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		clear(counted)
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if m.Name != vocab.MetricAnomalyTracesDropped && m.Name != vocab.MetricAnomalyTracesExported {
					continue
				}
				for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
					kind, _ := dp.Attributes.Value(vocab.AttrAnomalyKind)
					counted[m.Name+" "+kind.Emit()] += dp.Value
				}
			}
		}
		return counted[vocab.MetricAnomalyTracesDropped+" leak"]+counted[vocab.MetricAnomalyTracesExported+" leak"] >= floodSize
	})
	floodExported := map[trace.TraceID]bool{}
	for _, s := range rec.Ended() {
		if _, ok := leakIDs.Load(s.SpanContext().TraceID()); ok {
			floodExported[s.SpanContext().TraceID()] = true
		}
	}
	exported, refused := len(floodExported), counted[vocab.MetricAnomalyTracesDropped+" leak"]
	t.Logf("%d leaking requests in %s: %d traces exported, %d refused; the rare 500: exported; metrics %v",
		floodSize, elapsed.Round(time.Millisecond), exported, refused, counted)
	// The default budget is a ceiling: a second's worth at once (the flood
	// gets half of it, the other half is kept for rare anomalies), 10 a
	// second more while the flood lasts; two more for the requests decided
	// just after the last answer.
	if limit := int(10*(elapsed.Seconds()+1)) + 2; exported > limit || exported == 0 {
		t.Errorf("%d flood traces exported in %s, want 1 to %d", exported, elapsed, limit)
	}
	if int64(exported)+refused != floodSize {
		t.Errorf("%d exported + %d refused, want the %d leaking requests each decided once", exported, refused, floodSize)
	}
	if counted[vocab.MetricAnomalyTracesExported+" 5xx"] != 1 {
		t.Errorf("the rare 500 counted as %v", counted)
	}
}
