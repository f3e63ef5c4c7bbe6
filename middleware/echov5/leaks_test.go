package echov5_test

import (
	"errors"
	"io"
	"net/http"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"

	"github.com/labstack/echo/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	ttmw "github.com/telltale-go/telltale/middleware/echov5"
	"github.com/telltale-go/telltale/transport"
	"github.com/telltale-go/telltale/vocab"
)

// A handler forgets to close a response body. When it returns, the leak is
// on its server span — a count, and a pointer naming the handler's own
// file and line — with the evidence (stack, redacted URL, repaired) on the
// call's client span, and the body is closed so that the connection is
// freed.
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
	v.e.GET("/leaky/:id", func(c *echo.Context) error {
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
	v.e.GET("/tidy", func(c *echo.Context) error {
		req, err := http.NewRequestWithContext(c.Request().Context(), http.MethodGet, upstream.URL+"/data", nil)
		if err != nil {
			return err
		}
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
	evs := events(s, vocab.EventBodyLeaked)
	if len(evs) != 1 {
		t.Fatalf("%d leak events on the server span, want 1", len(evs))
	}
	ev := evs[0].Attributes
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
	if client.Parent().SpanID() != s.SpanContext().SpanID() {
		t.Error("the leaked call's client span is not under the server span")
	}
	var clientEvent []attribute.KeyValue
	if evs := events(client, vocab.EventBodyLeaked); len(evs) == 1 {
		clientEvent = evs[0].Attributes
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
		v.e.GET("/users/:id", func(c *echo.Context) error {
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
// ToMiddleware, with an error saying so, prefixed with the package name.
func TestLeaksRejectsZeroMonitor(t *testing.T) {
	_, err := ttmw.LeaksConfig{Goroutines: &ttmw.GoroutineMonitor{}}.ToMiddleware()
	if err == nil || !strings.HasPrefix(err.Error(), "echov5: ") || !strings.Contains(err.Error(), "NewGoroutineMonitor") {
		t.Errorf("ToMiddleware with a zero GoroutineMonitor: err = %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("LeaksWithConfig did not panic on an invalid config")
		}
	}()
	ttmw.LeaksWithConfig(ttmw.LeaksConfig{Goroutines: &ttmw.GoroutineMonitor{}})
}
