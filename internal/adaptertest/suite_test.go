package adaptertest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/goleak"

	"github.com/telltale-go/telltale/internal/server"
	"github.com/telltale-go/telltale/internal/testkit"
	"github.com/telltale-go/telltale/sampling"
	"github.com/telltale-go/telltale/transport"
	"github.com/telltale-go/telltale/vocab"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// adapters is the table every scenario runs over.
var adapters = []adapter{echoV4, echoV5, netHTTP}

// An adapter is one of telltale's server-side adapters as the suite drives
// it: its framework's glue, and nothing else.
type adapter struct {
	name string
	// handler serves routes behind the adapter's Trace, Deadline and
	// Leaks, outermost first, configured as st says.
	handler func(st stack, routes []route) http.Handler
	// newMonitor is the adapter's NewGoroutineMonitor.
	newMonitor func(server.GoroutineMonitorConfig) *server.GoroutineMonitor
	// spanName is the name of the server span of a request routed to a
	// neutral template.
	spanName func(method, template string) string
	// httpRoute is the http.route that span carries.
	httpRoute func(template string) string
}

// stack is what a scenario asks of telltale's middlewares.
type stack struct {
	tp          trace.TracerProvider          // Trace's; the env's when nil
	prop        propagation.TextMapPropagator // Trace's; the env's when nil
	timeout     time.Duration                 // Deadline's Timeout; 2 s when zero
	trustHeader bool                          // Deadline's TrustHeader
	monitor     *server.GoroutineMonitor      // Leaks' Goroutines; none when nil
}

// A route is a neutral template, in Go's syntax ("/users/{id}"), with the
// handler it serves.
type route struct {
	method, template string
	h                handler
}

// A handler is a route's behaviour, written once for every framework: it
// gets the request's context and answers a status and a body, or fails —
// an Echo handler returns the error, a net/http handler returns without
// writing, which is how each gives up.
type handler func(ctx context.Context) (reply, error)

// reply is a handler's answer.
type reply struct {
	status int
	body   string
}

// forEach runs scenario, unchanged, once per adapter.
func forEach(t *testing.T, scenario func(t *testing.T, a adapter)) {
	for _, a := range adapters {
		t.Run(a.name, func(t *testing.T) { scenario(t, a) })
	}
}

// Head samplers: every request, or none — then only what telltale finds
// anomalous is exported (package sampling).
var (
	sampleAll  = sdktrace.AlwaysSample()
	sampleNone = sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0))
)

// A caller's traceparent, unsampled: a request that carries it is under
// callerSpan in callerTrace.
const (
	callerTrace       = "0af7651916cd43dd8448eb211c80319c"
	callerSpan        = "b7ad6b7169203331"
	callerTraceparent = "00-" + callerTrace + "-" + callerSpan + "-00"
)

// connectTimeout is the Connect protocol's header of the caller's budget.
const connectTimeout = "Connect-Timeout-Ms"

// env is one adapter's server and a real telltale transport for its
// handlers' calls, both traced into one span recorder through the tracer
// provider package sampling builds.
type env struct {
	a      adapter
	rec    *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	prop   propagation.TextMapPropagator
	tr     *transport.Transport
	client *http.Client // through tr
	srv    *httptest.Server
	served atomic.Int64 // requests the whole stack has returned from: their spans have ended
}

func newEnv(t *testing.T, a adapter, head sdktrace.Sampler, opts ...transport.Option) *env {
	t.Helper()
	return newEnvBudget(t, a, head, sampling.DefaultBudget, opts...)
}

// newEnvBudget is newEnv with an anomaly budget of budget traces a second.
func newEnvBudget(t *testing.T, a adapter, head sdktrace.Sampler, budget int, opts ...transport.Option) *env {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	v := &env{a: a, rec: rec, prop: propagation.TraceContext{},
		tp: sampling.NewTracerProvider(head, sampling.WithBudget(budget), sampling.WithLogger(slog.New(slog.DiscardHandler)), sdktrace.WithSpanProcessor(rec))}
	t.Cleanup(func() { _ = v.tp.Shutdown(context.Background()) })
	v.tr = transport.New(nil, append([]transport.Option{
		transport.WithTracerProvider(v.tp),
		transport.WithPropagators(v.prop),
		transport.WithLogger(slog.New(slog.DiscardHandler)),
	}, opts...)...)
	t.Cleanup(func() { _ = v.tr.Close() })
	v.client = v.tr.Client()
	return v
}

// handler is the adapter's server for routes, traced into v.
func (v *env) handler(st stack, routes ...route) http.Handler {
	if st.tp == nil {
		st.tp = v.tp
	}
	if st.prop == nil {
		st.prop = v.prop
	}
	if st.timeout == 0 {
		st.timeout = 2 * time.Second
	}
	return v.a.handler(st, routes)
}

// serve starts the adapter's server for routes on 127.0.0.1.
func (v *env) serve(t *testing.T, st stack, routes ...route) {
	t.Helper()
	h := v.handler(st, routes...)
	v.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		v.served.Add(1)
	}))
	t.Cleanup(v.srv.Close)
}

// waitServed waits until n requests have been served to their end: what
// they were to export, they have.
func (v *env) waitServed(t *testing.T, n int64) {
	t.Helper()
	testkit.Eventually(t, fmt.Sprintf("%d request(s) served", n), func() bool { return v.served.Load() >= n })
}

// response is what a client got.
type response struct {
	code int
	body string
}

// do sends a request to the server with a plain client.
func (v *env) do(t *testing.T, method, path string, header http.Header) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, v.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := v.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, string(b)}
}

// abandon sends a request with header and goes away once the handler has
// signalled entered, as a caller that cancels does.
func (v *env) abandon(t *testing.T, path string, header http.Header, entered <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	errc := make(chan error, 1)
	go func() {
		resp, err := v.srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	receive(t, entered, "the handler to start")
	cancel()
	if err := receive(t, errc, "the client to give up"); !errors.Is(err, context.Canceled) {
		t.Fatalf("the client's request ended with %v, want it canceled", err)
	}
}

// waitSpan waits until a span matching match has ended and returns it.
func (v *env) waitSpan(t *testing.T, what string, match func(sdktrace.ReadOnlySpan) bool) sdktrace.ReadOnlySpan {
	t.Helper()
	return testkit.WaitSpan(t, v.rec, what, match)
}

// serverSpan waits until a server span named name has ended.
func (v *env) serverSpan(t *testing.T, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	return v.waitSpan(t, "server span "+name, func(s sdktrace.ReadOnlySpan) bool {
		return s.Name() == name && s.SpanKind() == trace.SpanKindServer
	})
}

// clientSpan waits until a client span has ended.
func (v *env) clientSpan(t *testing.T) sdktrace.ReadOnlySpan {
	t.Helper()
	return v.waitSpan(t, "a client span", func(s sdktrace.ReadOnlySpan) bool { return s.SpanKind() == trace.SpanKindClient })
}

// traceOf waits until trace id has its server span and want client spans
// exported, and returns them, the client spans in the order they started.
func (v *env) traceOf(t *testing.T, id trace.TraceID, want int) (sdktrace.ReadOnlySpan, []sdktrace.ReadOnlySpan) {
	t.Helper()
	var srv sdktrace.ReadOnlySpan
	var clients []sdktrace.ReadOnlySpan
	testkit.Eventually(t, "the request's trace", func() bool {
		srv, clients = nil, clients[:0]
		for _, s := range v.rec.Ended() {
			switch {
			case s.SpanContext().TraceID() != id:
			case s.SpanKind() == trace.SpanKindServer:
				srv = s
			case s.SpanKind() == trace.SpanKindClient:
				clients = append(clients, s)
			}
		}
		return srv != nil && len(clients) >= want
	})
	slices.SortFunc(clients, func(a, b sdktrace.ReadOnlySpan) int { return a.StartTime().Compare(b.StartTime()) })
	return srv, clients
}

func attr(s sdktrace.ReadOnlySpan, key string) (attribute.Value, bool) {
	return testkit.AttrOf(s.Attributes(), key)
}

func mustAttr(t *testing.T, s sdktrace.ReadOnlySpan, key string) attribute.Value {
	t.Helper()
	return testkit.MustAttr(t, s, key)
}

// events returns the events of s named name.
func events(s sdktrace.ReadOnlySpan, name string) []sdktrace.Event {
	var evs []sdktrace.Event
	for _, ev := range s.Events() {
		if ev.Name == name {
			evs = append(evs, ev)
		}
	}
	return evs
}

// receive waits up to 5 s for a value from ch.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("waited 5s for %s", what)
	}
	var zero T
	return zero
}

// seenIDs carries the span context each handler saw.
type seenIDs chan trace.SpanContext

func (s seenIDs) note(ctx context.Context) { s <- trace.SpanContextFromContext(ctx) }

// sameJSON reports whether a and b are the same JSON value, whatever their
// spacing and trailing newline.
func sameJSON(a, b string) bool {
	var x, y any
	return json.Unmarshal([]byte(a), &x) == nil && json.Unmarshal([]byte(b), &y) == nil && reflect.DeepEqual(x, y)
}

// fetch calls url with ctx through client, and reads the body to its end
// and closes it.
func fetch(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// blackHole is an upstream that accepts requests and never answers, until
// the caller gives up.
func blackHole(t *testing.T) *httptest.Server { return testkit.BlackHole(t) }

// payloadServer is an upstream that answers size bytes.
func payloadServer(t *testing.T, size int) *httptest.Server {
	t.Helper()
	payload := make([]byte, size)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(payload)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// refusedURL is the URL of an upstream that is down: nothing listens.
func refusedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/items"
	_ = ln.Close()
	return url
}

// fakeClock is a goroutine monitor's clock that moves only when the test
// moves it: the goroutines are real, only the monitor's idea of how long
// ago their request ended is not.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
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

// An upstream that black-holes does not hold the request: the deadline
// cancels the call, the handler gives up, and the client gets a 504 with
// the deadline as JSON, within the deadline plus a margin. The server span
// says the deadline did it; the call's client span, its child, says why
// the call failed.
func TestDeadlineAnswers504WhenUpstreamBlackHoles(t *testing.T) {
	forEach(t, func(t *testing.T, a adapter) {
		v := newEnv(t, a, sampleAll)
		upstream := blackHole(t)
		const timeout = 200 * time.Millisecond
		v.serve(t, stack{timeout: timeout}, route{http.MethodGet, "/feed", func(ctx context.Context) (reply, error) {
			if err := fetch(ctx, v.client, upstream.URL+"/slow"); err != nil {
				return reply{}, err
			}
			return reply{http.StatusOK, "fed"}, nil
		}})

		start := time.Now()
		got := v.do(t, http.MethodGet, "/feed", nil)
		elapsed := time.Since(start)
		if got.code != http.StatusGatewayTimeout {
			t.Fatalf("status %d %q, want 504", got.code, got.body)
		}
		if want := `{"message":"request deadline of 200ms exceeded","timeout_ms":200}`; !sameJSON(got.body, want) {
			t.Errorf("body %q, want %s", got.body, want)
		}
		const margin = 250 * time.Millisecond
		if elapsed < timeout || elapsed > timeout+margin {
			t.Errorf("answered after %s, want within [%s, %s]", elapsed, timeout, timeout+margin)
		}

		s := v.serverSpan(t, a.spanName(http.MethodGet, "/feed"))
		if !mustAttr(t, s, vocab.AttrDeadlineExceeded).AsBool() {
			t.Error("server span not marked telltale.deadline.exceeded")
		}
		if src := mustAttr(t, s, vocab.AttrDeadlineSource).AsString(); src != "default" {
			t.Errorf("telltale.deadline.source = %q, want default", src)
		}
		if et := mustAttr(t, s, "error.type").AsString(); et != vocab.ErrorDeadlineExceeded {
			t.Errorf("server span error.type = %q, want %s", et, vocab.ErrorDeadlineExceeded)
		}
		if s.Status().Code != codes.Error || !strings.HasPrefix(s.Status().Description, "request deadline of 200ms exceeded") {
			t.Errorf("server span status %v, want Error, saying the deadline first", s.Status())
		}
		// The exception is the error the handler met, the same behind
		// every adapter — not a framework's wrapper, nor an adapter's own
		// type.
		if exc := events(s, "exception"); len(exc) != 1 {
			t.Errorf("%d exception events, want 1", len(exc))
		} else if typ, _ := testkit.AttrOf(exc[0].Attributes, "exception.type"); typ.AsString() != "context.deadlineExceededError" {
			t.Errorf("exception.type = %q, want the handler's error, context.deadlineExceededError", typ.AsString())
		}
		client := v.clientSpan(t)
		if et := mustAttr(t, client, "error.type").AsString(); et != vocab.ErrorDeadlineExceeded {
			t.Errorf("client span error.type = %q, want %s", et, vocab.ErrorDeadlineExceeded)
		}
		if client.Parent().SpanID() != s.SpanContext().SpanID() {
			t.Error("the client span is not a child of the server span")
		}
	})
}

// A client that goes away is not the server's failure: the request ends
// 499, the span is not an error, and it says the client went.
func TestClientGoneIs499NotError(t *testing.T) {
	forEach(t, func(t *testing.T, a adapter) {
		v := newEnv(t, a, sampleAll)
		entered := make(chan struct{}, 1)
		v.serve(t, stack{timeout: 5 * time.Second}, route{http.MethodGet, "/wait", func(ctx context.Context) (reply, error) {
			entered <- struct{}{}
			<-ctx.Done() // the client goes away well before the deadline
			return reply{}, ctx.Err()
		}})
		v.abandon(t, "/wait", nil, entered)

		s := v.serverSpan(t, a.spanName(http.MethodGet, "/wait"))
		if code := mustAttr(t, s, "http.response.status_code").AsInt64(); code != server.StatusClientClosedRequest {
			t.Errorf("http.response.status_code = %d, want 499", code)
		}
		if s.Status().Code == codes.Error {
			t.Errorf("span status %v: a client going away is not a server error", s.Status())
		}
		if !mustAttr(t, s, vocab.AttrClientGone).AsBool() {
			t.Error("not marked telltale.client_gone")
		}
		if _, ok := attr(s, vocab.AttrDeadlineExceeded); ok {
			t.Error("a client gone is marked telltale.deadline.exceeded")
		}
	})
}

// The server span is named by the route template, in the framework's
// syntax, and carries it as http.route with the status; a request no route
// matched is named by its method alone, so that paths never make span
// names unbounded.
func TestSpanIsNamedByRoute(t *testing.T) {
	forEach(t, func(t *testing.T, a adapter) {
		v := newEnv(t, a, sampleAll)
		v.serve(t, stack{},
			route{http.MethodGet, "/users/{id}", func(context.Context) (reply, error) { return reply{http.StatusOK, "user"}, nil }},
			route{http.MethodPost, "/users/{id}/files/{name}", func(context.Context) (reply, error) { return reply{http.StatusCreated, ""}, nil }},
		)
		for _, c := range []struct {
			method, path, template string
			status                 int
		}{
			{http.MethodGet, "/users/42", "/users/{id}", http.StatusOK},
			{http.MethodPost, "/users/7/files/a.txt", "/users/{id}/files/{name}", http.StatusCreated},
		} {
			if got := v.do(t, c.method, c.path, nil); got.code != c.status {
				t.Fatalf("%s %s: status %d %q", c.method, c.path, got.code, got.body)
			}
			s := v.serverSpan(t, a.spanName(c.method, c.template))
			if r := mustAttr(t, s, "http.route").AsString(); r != a.httpRoute(c.template) {
				t.Errorf("http.route = %q, want %q", r, a.httpRoute(c.template))
			}
			if code := mustAttr(t, s, "http.response.status_code").AsInt64(); code != int64(c.status) {
				t.Errorf("http.response.status_code = %d, want %d", code, c.status)
			}
			if s.Status().Code != codes.Unset {
				t.Errorf("span status %v, want unset", s.Status())
			}
		}

		if got := v.do(t, http.MethodGet, "/nowhere/123", nil); got.code != http.StatusNotFound {
			t.Fatalf("unrouted GET: status %d", got.code)
		}
		s := v.serverSpan(t, http.MethodGet)
		if code := mustAttr(t, s, "http.response.status_code").AsInt64(); code != http.StatusNotFound {
			t.Errorf("unrouted: http.response.status_code = %d", code)
		}
		if r, ok := attr(s, "http.route"); ok {
			t.Errorf("unrouted: http.route = %q", r.AsString())
		}
	})
}

// A handler forgets to close a response body. When it returns, the server
// span counts the leak and points to the handler's own line; the evidence,
// stack included, is on the call's client span — one stack per trace —
// and the body is repaired: closed, so that its connection is freed.
func TestLeakedBodyPointsToTheHandlersLine(t *testing.T) {
	forEach(t, func(t *testing.T, a adapter) {
		v := newEnv(t, a, sampleAll)
		upstream := payloadServer(t, 64<<10)
		var (
			leakFile string
			leakLine int
		)
		leaked := make(chan *http.Response, 1)
		v.serve(t, stack{}, route{http.MethodGet, "/leaky/{id}", func(ctx context.Context) (reply, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, upstream.URL+"/data?token=secret", nil)
			if err != nil {
				return reply{}, err
			}
			_, leakFile, leakLine, _ = runtime.Caller(0)
			resp, err := v.client.Do(req) // the leak: leakLine+1
			if err != nil {
				return reply{}, err
			}
			leaked <- resp // kept reachable, so that the scope, not the collector, finds it
			return reply{http.StatusOK, "forgot to close"}, nil
		}})

		if got := v.do(t, http.MethodGet, "/leaky/1", nil); got.code != http.StatusOK {
			t.Fatalf("status %d %q", got.code, got.body)
		}
		resp := receive(t, leaked, "the leaked response")
		t.Cleanup(func() { resp.Body.Close() })

		s := v.serverSpan(t, a.spanName(http.MethodGet, "/leaky/{id}"))
		if n := mustAttr(t, s, vocab.AttrLeaks).AsInt64(); n != 1 {
			t.Errorf("telltale.leaks = %d, want 1", n)
		}
		evs := events(s, vocab.EventBodyLeaked)
		if len(evs) != 1 {
			t.Fatalf("%d leak events on the server span, want 1", len(evs))
		}
		ev := evs[0].Attributes
		if file, _ := testkit.AttrOf(ev, "code.file.path"); file.AsString() != leakFile {
			t.Errorf("code.file.path = %q, want %q", file.AsString(), leakFile)
		}
		if line, _ := testkit.AttrOf(ev, "code.line.number"); line.AsInt64() != int64(leakLine+1) {
			t.Errorf("code.line.number = %d, want %d", line.AsInt64(), leakLine+1)
		}
		if _, ok := testkit.AttrOf(ev, "code.stacktrace"); ok {
			t.Error("the server span's leak event carries code.stacktrace: the stack belongs on the client span")
		}

		client := v.clientSpan(t)
		cevs := events(client, vocab.EventBodyLeaked)
		if len(cevs) != 1 {
			t.Fatalf("%d leak events on the client span, want 1", len(cevs))
		}
		if st, _ := testkit.AttrOf(cevs[0].Attributes, "code.stacktrace"); !strings.Contains(st.AsString(), "TestLeakedBodyPointsToTheHandlersLine") {
			t.Errorf("the client span's leak event has no stack naming the handler: %q", st.AsString())
		}
		if client.Parent().SpanID() != s.SpanContext().SpanID() {
			t.Error("the leaked call's client span is not a child of the server span")
		}
		if _, err := resp.Body.Read(make([]byte, 1)); !errors.Is(err, transport.ErrLeakRepaired) {
			t.Errorf("reading the leaked body: %v, want transport.ErrLeakRepaired", err)
		}
		transport.VerifyNoOpenBodies(t, v.tr)
	})
}

// A goroutine the handler left blocked is found once the monitor's grace
// has passed — on a fake clock — and reported as a span in the request's
// trace, under its server span, with the route and the line it is blocked
// on; within the grace, it is not.
func TestOrphanedGoroutineIsReportedUnderItsRequest(t *testing.T) {
	forEach(t, func(t *testing.T, a adapter) {
		v := newEnv(t, a, sampleAll)
		mon := a.newMonitor(server.GoroutineMonitorConfig{TracerProvider: v.tp, Interval: time.Second, Grace: time.Second})
		clock := &fakeClock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
		server.SetMonitorClock(mon, clock.Now)
		release := make(chan struct{})
		t.Cleanup(func() { close(release) })
		blockedAt := make(chan int, 1)
		v.serve(t, stack{monitor: mon}, route{http.MethodGet, "/fire/{id}", func(ctx context.Context) (reply, error) {
			go func() {
				_, _, line, _ := runtime.Caller(0)
				blockedAt <- line + 2 // the line of <-release
				<-release             // the orphan blocks here
			}()
			return reply{http.StatusAccepted, ""}, nil
		}})

		if got := v.do(t, http.MethodGet, "/fire/1", nil); got.code != http.StatusAccepted {
			t.Fatalf("status %d %q", got.code, got.body)
		}
		line := receive(t, blockedAt, "the goroutine to start")
		s := v.serverSpan(t, a.spanName(http.MethodGet, "/fire/{id}"))
		if orphans := mon.Check(); len(orphans) != 0 {
			t.Errorf("orphans reported within the grace: %+v", orphans)
		}
		clock.Advance(2 * time.Second)
		if orphans := mon.Check(); len(orphans) != 1 {
			t.Fatalf("%d orphans past the grace, want 1: %+v", len(orphans), orphans)
		}

		o := v.waitSpan(t, "the orphan's span", func(s sdktrace.ReadOnlySpan) bool { return s.Name() == vocab.SpanGoroutineOrphaned })
		if o.SpanContext().TraceID() != s.SpanContext().TraceID() || o.Parent().SpanID() != s.SpanContext().SpanID() {
			t.Errorf("the orphan's span is under %v, want the request's server span %v", o.Parent(), s.SpanContext())
		}
		if r := mustAttr(t, o, "http.route").AsString(); r != a.httpRoute("/fire/{id}") {
			t.Errorf("http.route = %q, want %q", r, a.httpRoute("/fire/{id}"))
		}
		if l := mustAttr(t, o, "code.line.number").AsInt64(); l != int64(line) {
			t.Errorf("code.line.number = %d, want %d, where the goroutine blocks", l, line)
		}
		if o.Status().Code != codes.Error {
			t.Errorf("the orphan's span status %v, want Error", o.Status())
		}
	})
}

// An unsampled request that turns out anomalous — a 5xx, a call that
// failed — is exported whole, under the caller's traceparent: its server
// span, with the ids the handler saw, and every client span, healthy calls
// too, each marked telltale.replayed. A healthy unsampled request exports
// nothing.
func TestUnsampledAnomalyIsExportedWhole(t *testing.T) {
	healthy := payloadServer(t, 1<<10)
	down := refusedURL(t)
	cases := []struct {
		name     string
		status   int
		exported bool
		calls    int // client spans in its trace
		h        func(client *http.Client) handler
	}{
		{"5xx", http.StatusBadGateway, true, 1, func(client *http.Client) handler {
			return func(ctx context.Context) (reply, error) {
				_ = fetch(ctx, client, healthy.URL+"/articles")
				return reply{http.StatusBadGateway, "no ads"}, nil
			}
		}},
		{"failed call", http.StatusOK, true, 2, func(client *http.Client) handler {
			return func(ctx context.Context) (reply, error) {
				_ = fetch(ctx, client, healthy.URL+"/articles")
				_ = fetch(ctx, client, down)
				return reply{http.StatusOK, "partial"}, nil
			}
		}},
		{"healthy", http.StatusOK, false, 0, func(client *http.Client) handler {
			return func(ctx context.Context) (reply, error) {
				if err := fetch(ctx, client, healthy.URL+"/articles"); err != nil {
					return reply{}, err
				}
				return reply{http.StatusOK, "all"}, nil
			}
		}},
	}
	forEach(t, func(t *testing.T, a adapter) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				v := newEnv(t, a, sampleNone)
				seen := make(seenIDs, 1)
				h := tc.h(v.client)
				v.serve(t, stack{}, route{http.MethodGet, "/things/{id}", func(ctx context.Context) (reply, error) {
					seen.note(ctx)
					return h(ctx)
				}})
				if got := v.do(t, http.MethodGet, "/things/1", http.Header{"Traceparent": {callerTraceparent}}); got.code != tc.status {
					t.Fatalf("status %d %q, want %d", got.code, got.body, tc.status)
				}
				sc := receive(t, seen, "the handler's span context")
				if !tc.exported {
					v.waitServed(t, 1)
					for _, s := range v.rec.Ended() {
						t.Errorf("a healthy unsampled request exported %s %q", s.SpanKind(), s.Name())
					}
					return
				}
				v.waitServed(t, 1) // the trace is exported whole, or not at all, when the request ends
				s, clients := v.traceOf(t, sc.TraceID(), tc.calls)
				if s.Name() != a.spanName(http.MethodGet, "/things/{id}") {
					t.Errorf("server span %q, want %q", s.Name(), a.spanName(http.MethodGet, "/things/{id}"))
				}
				if sc.TraceID().String() != callerTrace || s.SpanContext().SpanID() != sc.SpanID() || s.Parent().SpanID().String() != callerSpan {
					t.Errorf("server span %v under %v; the handler saw %v, the caller was %s", s.SpanContext(), s.Parent(), sc, callerTraceparent)
				}
				if code := mustAttr(t, s, "http.response.status_code").AsInt64(); code != int64(tc.status) {
					t.Errorf("http.response.status_code = %d, want %d", code, tc.status)
				}
				if !mustAttr(t, s, vocab.AttrReplayed).AsBool() {
					t.Error("server span not marked telltale.replayed")
				}
				if len(clients) != tc.calls {
					t.Errorf("%d client spans exported, want %d", len(clients), tc.calls)
				}
				for _, c := range clients {
					if c.Parent().SpanID() != s.SpanContext().SpanID() {
						t.Errorf("client span %q is not under the server span", c.Name())
					}
					if r, _ := attr(c, vocab.AttrReplayed); !r.AsBool() {
						t.Errorf("client span %q not marked telltale.replayed", c.Name())
					}
				}
			})
		}
	})
}

// A request's calls through a transport on another tracer provider: one
// without tracing (a no-op provider, as the global one is before any is
// set), whose spans are their parent's; or one that samples every call, so
// that its spans are exported live. The server span of the unsampled,
// failed request is exported, degraded, with no client span under it from
// the replay: none with the server span's ids, and the live one once.
func TestCallsThroughATransportOnAnotherProvider(t *testing.T) {
	down := refusedURL(t)
	forEach(t, func(t *testing.T, a adapter) {
		for _, other := range []string{"no-op", "sampling every call"} {
			t.Run(other, func(t *testing.T) {
				otherRec := tracetest.NewSpanRecorder()
				var tp trace.TracerProvider = noop.NewTracerProvider()
				if other != "no-op" {
					sdk := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithSpanProcessor(otherRec))
					t.Cleanup(func() { _ = sdk.Shutdown(context.Background()) })
					tp = sdk
				}
				v := newEnv(t, a, sampleNone, transport.WithTracerProvider(tp))
				seen := make(seenIDs, 1)
				v.serve(t, stack{}, route{http.MethodGet, "/things/{id}", func(ctx context.Context) (reply, error) {
					seen.note(ctx)
					_ = fetch(ctx, v.client, down)
					return reply{http.StatusOK, "partial"}, nil
				}})
				if got := v.do(t, http.MethodGet, "/things/1", nil); got.code != http.StatusOK {
					t.Fatalf("status %d %q", got.code, got.body)
				}
				sc := receive(t, seen, "the handler's span context")
				v.waitServed(t, 1)
				s, _ := v.traceOf(t, sc.TraceID(), 0)
				if d, _ := attr(s, vocab.AttrDegraded); !d.AsBool() {
					t.Error("the answer of a request whose call failed is not marked degraded")
				}
				for _, c := range v.rec.Ended() {
					if c.SpanKind() == trace.SpanKindClient {
						t.Errorf("a client span %q was replayed (id %s, the server span's %s, under %s)", c.Name(), c.SpanContext().SpanID(), s.SpanContext().SpanID(), c.Parent().SpanID())
					}
				}
				if other == "no-op" {
					return
				}
				n := 0
				for _, c := range otherRec.Ended() {
					if c.SpanKind() == trace.SpanKindClient {
						n++
						if c.Parent().SpanID() != s.SpanContext().SpanID() {
							t.Errorf("the live client span is under %s, not the server span %s", c.Parent().SpanID(), s.SpanContext().SpanID())
						}
					}
				}
				if n != 1 {
					t.Errorf("%d live client spans, want 1", n)
				}
			})
		}
	})
}

// Orphans of unsampled requests past a check's MaxReports are reported by
// the next check, their requests exported: none is lost for having waited.
func TestOrphansPastMaxReportsAreReportedLater(t *testing.T) {
	forEach(t, func(t *testing.T, a adapter) {
		v := newEnv(t, a, sampleNone)
		mon := a.newMonitor(server.GoroutineMonitorConfig{TracerProvider: v.tp, Interval: time.Second, Grace: time.Second, MaxReports: 1})
		clock := &fakeClock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
		server.SetMonitorClock(mon, clock.Now)
		release := make(chan struct{})
		var done sync.WaitGroup
		t.Cleanup(func() { close(release); done.Wait() })
		started := make(chan struct{}, 2)
		v.serve(t, stack{monitor: mon}, route{http.MethodGet, "/fire/{id}", func(ctx context.Context) (reply, error) {
			done.Add(1)
			go func() {
				defer done.Done()
				started <- struct{}{}
				<-release
			}()
			return reply{http.StatusAccepted, ""}, nil
		}})
		for range 2 {
			v.do(t, http.MethodGet, "/fire/1", nil)
			receive(t, started, "the goroutine")
		}
		v.waitServed(t, 2)
		for range 2 {
			clock.Advance(2 * time.Second)
			mon.Check()
		}
		var orphans []sdktrace.ReadOnlySpan
		testkit.Eventually(t, "both orphans exported", func() bool {
			orphans = orphans[:0]
			for _, s := range v.rec.Ended() {
				if s.Name() == vocab.SpanGoroutineOrphaned {
					orphans = append(orphans, s)
				}
			}
			return len(orphans) == 2
		})
		if orphans[0].SpanContext().TraceID() == orphans[1].SpanContext().TraceID() {
			t.Error("both orphans in one trace, want one in each request's")
		}
	})
}

// A call made under a span of the application's own is replayed under the
// server span — the application's span is not replayed: only its tracer
// could — and says which span it was made under; a call made within
// another call's round trip (a token fetched by a base transport) is
// replayed under that call, as sampled.
func TestReplayedCallsUnderOtherSpans(t *testing.T) {
	down := refusedURL(t)
	token := payloadServer(t, 64)
	forEach(t, func(t *testing.T, a adapter) {
		v := newEnv(t, a, sampleNone)
		// The outer transport's base fetches a token through the env's
		// transport, within the outer call's round trip.
		tokens := transport.New(roundTripperFunc(func(r *http.Request) (*http.Response, error) {
			if err := fetch(r.Context(), v.client, token.URL+"/token"); err != nil {
				return nil, err
			}
			return http.DefaultTransport.RoundTrip(r)
		}), transport.WithTracerProvider(v.tp), transport.WithLogger(slog.New(slog.DiscardHandler)), transport.WithName("api"))
		t.Cleanup(func() { _ = tokens.Close() })
		seen := make(seenIDs, 1)
		own := make(chan trace.SpanContext, 1)
		v.serve(t, stack{}, route{http.MethodGet, "/profile/{id}", func(ctx context.Context) (reply, error) {
			seen.note(ctx)
			lctx, load := trace.SpanFromContext(ctx).TracerProvider().Tracer("app").Start(ctx, "load-profile")
			own <- load.SpanContext()
			_ = fetch(lctx, v.client, down)
			load.End()
			_ = fetch(ctx, tokens.Client(), token.URL+"/profile")
			return reply{http.StatusOK, "partial"}, nil
		}})
		if got := v.do(t, http.MethodGet, "/profile/1", nil); got.code != http.StatusOK {
			t.Fatalf("status %d %q", got.code, got.body)
		}
		sc := receive(t, seen, "the handler's span context")
		loadSC := receive(t, own, "the handler's own span")
		v.waitServed(t, 1)
		s, clients := v.traceOf(t, sc.TraceID(), 3)
		byName := map[string]sdktrace.ReadOnlySpan{}
		for _, c := range clients {
			byName[c.Name()] = c
		}
		under := byName["GET "+strings.TrimPrefix(down, "http://")[:strings.Index(strings.TrimPrefix(down, "http://"), "/")]]
		api, tok := byName["GET api"], byName["GET "+strings.TrimPrefix(token.URL, "http://")]
		if under == nil || api == nil || tok == nil {
			t.Fatalf("client spans %v", byName)
		}
		if under.Parent().SpanID() != s.SpanContext().SpanID() {
			t.Errorf("the call under the application's span is under %s, want the server span", under.Parent().SpanID())
		}
		if p, _ := attr(under, vocab.AttrReplayParent); p.AsString() != loadSC.SpanID().String() {
			t.Errorf("%s = %q, want the application's span %s", vocab.AttrReplayParent, p.AsString(), loadSC.SpanID())
		}
		if tok.Parent().SpanID() != api.SpanContext().SpanID() {
			t.Errorf("the token call is under %s, want the call it was made within, %s", tok.Parent().SpanID(), api.SpanContext().SpanID())
		}
		if _, ok := attr(tok, vocab.AttrReplayParent); ok {
			t.Errorf("the token call, under its real parent, says %s", vocab.AttrReplayParent)
		}
		for _, sp := range v.rec.Ended() {
			if sp.Name() == "load-profile" {
				t.Error("the handler's own unsampled span was exported")
			}
		}
	})
}

// A library whose tracing is switched off with a no-op provider gets, from
// its tracer, the unsampled span it finds in the context: what it sets on
// it — another request's method and status, a status Ok — does not reach
// the replayed server span, which reads as its sampled twin would.
func TestANoopLibraryCannotWriteOnTheReplay(t *testing.T) {
	teapot := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	t.Cleanup(teapot.Close)
	forEach(t, func(t *testing.T, a adapter) {
		v := newEnv(t, a, sampleNone)
		quiet := &http.Client{Transport: otelhttp.NewTransport(http.DefaultTransport, otelhttp.WithTracerProvider(noop.NewTracerProvider()))}
		seen := make(seenIDs, 1)
		v.serve(t, stack{}, route{http.MethodPost, "/q", func(ctx context.Context) (reply, error) {
			seen.note(ctx)
			_ = fetch(ctx, quiet, teapot.URL+"/x")
			_, span := noop.NewTracerProvider().Tracer("db").Start(ctx, "SELECT")
			span.SetAttributes(attribute.String("db.query.text", "SELECT 1"))
			span.SetStatus(codes.Ok, "")
			span.End()
			return reply{http.StatusInternalServerError, "no"}, nil
		}})
		if got := v.do(t, http.MethodPost, "/q", nil); got.code != http.StatusInternalServerError {
			t.Fatalf("status %d %q", got.code, got.body)
		}
		sc := receive(t, seen, "the handler's span context")
		v.waitServed(t, 1)
		s, _ := v.traceOf(t, sc.TraceID(), 0)
		if m := mustAttr(t, s, "http.request.method").AsString(); m != http.MethodPost {
			t.Errorf("http.request.method = %q, want POST", m)
		}
		if c := mustAttr(t, s, "http.response.status_code").AsInt64(); c != http.StatusInternalServerError {
			t.Errorf("http.response.status_code = %d, want 500", c)
		}
		if _, ok := attr(s, "db.query.text"); ok {
			t.Error("a no-op span's attribute is on the replayed server span")
		}
		if s.Status().Code != codes.Error {
			t.Errorf("status %v, want Error", s.Status())
		}
	})
}

// A client span recorded but not sampled (RecordOnly under an unsampled
// parent) is not exported by its provider: it is replayed with its request,
// once, in one decision of the budget — not on its own, ahead of its
// request.
func TestRecordOnlyCallsAreReplayedWithTheirRequest(t *testing.T) {
	down := refusedURL(t)
	forEach(t, func(t *testing.T, a adapter) {
		head := sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0), sdktrace.WithLocalParentNotSampled(recordOnly{}))
		v := newEnvBudget(t, a, head, 1) // one decision a second: the call and its request must share it
		seen := make(seenIDs, 1)
		v.serve(t, stack{}, route{http.MethodGet, "/feed", func(ctx context.Context) (reply, error) {
			seen.note(ctx)
			_ = fetch(ctx, v.client, down)
			return reply{http.StatusBadGateway, "down"}, nil
		}})
		if got := v.do(t, http.MethodGet, "/feed", nil); got.code != http.StatusBadGateway {
			t.Fatalf("status %d %q", got.code, got.body)
		}
		sc := receive(t, seen, "the handler's span context")
		v.waitServed(t, 1)
		s, _ := v.traceOf(t, sc.TraceID(), 1)
		// The recorder sees every span that records; an exporter gets the
		// sampled ones only.
		var exported []sdktrace.ReadOnlySpan
		for _, sp := range v.rec.Ended() {
			if sp.SpanContext().IsSampled() {
				exported = append(exported, sp)
			}
		}
		if len(exported) != 2 {
			t.Fatalf("%d spans exported, want the server span and its call, once", len(exported))
		}
		for _, sp := range exported {
			if sp.SpanKind() == trace.SpanKindClient && sp.Parent().SpanID() != s.SpanContext().SpanID() {
				t.Errorf("the call is under %s, want the server span", sp.Parent().SpanID())
			}
		}
	})
}

// The replayed trace of a request reads as its sampled trace: the same
// server span and the same client spans — names, kinds, statuses,
// attributes, events — ids, times and the replay mark aside. Both runs are
// served by one server, so that the request goes to the same host and
// port, sampled or not.
func TestReplayedTraceIsTheSampledOne(t *testing.T) {
	healthy1, healthy2 := payloadServer(t, 1<<10), payloadServer(t, 1<<10)
	down := refusedURL(t)
	hole := blackHole(t)
	cases := []struct {
		name   string
		status int
		calls  int
		h      func(client *http.Client) handler
	}{
		{"degraded fan-out", http.StatusOK, 3, func(client *http.Client) handler {
			return func(ctx context.Context) (reply, error) {
				_ = fetch(ctx, client, healthy1.URL+"/articles?page=1")
				_ = fetch(ctx, client, healthy2.URL+"/users")
				_ = fetch(ctx, client, down)
				return reply{http.StatusOK, "partial"}, nil
			}
		}},
		{"504", http.StatusGatewayTimeout, 2, func(client *http.Client) handler {
			return func(ctx context.Context) (reply, error) {
				_ = fetch(ctx, client, healthy1.URL+"/articles")
				if err := fetch(ctx, client, hole.URL); err != nil {
					return reply{}, err
				}
				return reply{http.StatusOK, "fed"}, nil
			}
		}},
	}
	forEach(t, func(t *testing.T, a adapter) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				envs := [2]*env{newEnv(t, a, sampleAll), newEnv(t, a, sampleNone)}
				seen := make(seenIDs, 1)
				var handlers [2]http.Handler
				for i, v := range envs {
					h := tc.h(v.client)
					handlers[i] = v.handler(stack{timeout: 200 * time.Millisecond}, route{http.MethodGet, "/feed/{id}", func(ctx context.Context) (reply, error) {
						seen.note(ctx)
						return h(ctx)
					}})
				}
				front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					handlers[len(r.Header.Get("X-Unsampled"))%2].ServeHTTP(w, r)
				}))
				t.Cleanup(front.Close)
				type run struct {
					server  sdktrace.ReadOnlySpan
					clients []sdktrace.ReadOnlySpan
				}
				var runs [2]run
				for i, v := range envs {
					v.srv = front
					var header http.Header
					if i == 1 {
						header = http.Header{"X-Unsampled": {"1"}}
					}
					if got := v.do(t, http.MethodGet, "/feed/1", header); got.code != tc.status {
						t.Fatalf("run %d: status %d %q, want %d", i, got.code, got.body, tc.status)
					}
					runs[i].server, runs[i].clients = v.traceOf(t, receive(t, seen, "the handler's span context").TraceID(), tc.calls)
				}
				sampled, replayed := runs[0], runs[1]
				if r, _ := attr(replayed.server, vocab.AttrReplayed); !r.AsBool() {
					t.Fatal("the unsampled request was not replayed")
				}
				// The request came without a traceparent: both server
				// spans are roots of their traces, as Jaeger needs to draw
				// them — not children of themselves nor of anything else.
				for i, r := range runs {
					if p := r.server.Parent(); p.IsValid() {
						t.Errorf("run %d: the server span %v of a request without a traceparent has a parent %v", i, r.server.SpanContext().SpanID(), p.SpanID())
					}
				}
				if len(replayed.clients) != len(sampled.clients) {
					t.Fatalf("%d client spans replayed, %d sampled", len(replayed.clients), len(sampled.clients))
				}
				if d := testkit.SpanDiff(sampled.server, replayed.server); len(d) > 0 {
					t.Errorf("server spans differ:\n%s", strings.Join(d, "\n"))
				}
				for i := range sampled.clients {
					sc, rc := sampled.clients[i], replayed.clients[i]
					if sc.Parent().SpanID() != sampled.server.SpanContext().SpanID() || rc.Parent().SpanID() != replayed.server.SpanContext().SpanID() {
						t.Errorf("client span %q is not under its server span", rc.Name())
					}
					if d := testkit.SpanDiff(sc, rc); len(d) > 0 {
						t.Errorf("client spans %q differ:\n%s", sc.Name(), strings.Join(d, "\n"))
					}
				}
			})
		}
	})
}

// Behind TrustHeader, the caller's Connect-Timeout-Ms is the request's
// deadline (source header), and a telltale transport propagating
// deadlines sends the upstream no more than the time left; a malformed
// header is ignored — the default applies — and recorded as an event.
func TestHeaderDeadlineIsHonouredAndPropagated(t *testing.T) {
	forEach(t, func(t *testing.T, a adapter) {
		v := newEnv(t, a, sampleAll, transport.WithDeadlinePropagation())
		propagated := make(chan string, 1)
		upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			propagated <- r.Header.Get(connectTimeout)
			w.WriteHeader(http.StatusNoContent)
		}))
		t.Cleanup(upstream.Close)
		budgets := make(chan time.Duration, 1) // the time left as the handler calls the upstream
		probes := make(chan time.Duration, 1)
		v.serve(t, stack{timeout: 2 * time.Second, trustHeader: true},
			route{http.MethodGet, "/budget", func(ctx context.Context) (reply, error) {
				d, ok := ctx.Deadline()
				if !ok {
					return reply{http.StatusInternalServerError, "no deadline"}, nil
				}
				budgets <- time.Until(d)
				err := fetch(ctx, v.client, upstream.URL)
				if err != nil {
					return reply{}, err
				}
				<-ctx.Done() // works until the caller's budget is spent
				return reply{}, ctx.Err()
			}},
			route{http.MethodGet, "/probe", func(ctx context.Context) (reply, error) {
				if d, ok := ctx.Deadline(); ok {
					probes <- time.Until(d)
				} else {
					probes <- -1
				}
				return reply{http.StatusNoContent, ""}, nil
			}},
		)

		got := v.do(t, http.MethodGet, "/budget", http.Header{connectTimeout: {"100"}})
		if got.code != http.StatusGatewayTimeout {
			t.Fatalf("status %d %q, want 504", got.code, got.body)
		}
		if want := `{"message":"request deadline of 100ms exceeded","timeout_ms":100}`; !sameJSON(got.body, want) {
			t.Errorf("body %q, want %s", got.body, want)
		}
		left := receive(t, budgets, "the handler's budget")
		if left > 100*time.Millisecond || left < 50*time.Millisecond {
			t.Errorf("the handler's budget is %s, want the caller's 100ms", left)
		}
		sent, err := strconv.ParseInt(receive(t, propagated, "the upstream's request"), 10, 64)
		if err != nil || sent < 1 || sent > left.Milliseconds() {
			t.Errorf("the upstream was sent %s: %d ms (%v), want at most the %s left before the call", connectTimeout, sent, err, left)
		}
		s := v.serverSpan(t, a.spanName(http.MethodGet, "/budget"))
		if src := mustAttr(t, s, vocab.AttrDeadlineSource).AsString(); src != "header" {
			t.Errorf("telltale.deadline.source = %q, want header", src)
		}
		if ms := mustAttr(t, s, vocab.AttrDeadlineTimeout).AsInt64(); ms != 100 {
			t.Errorf("telltale.deadline.timeout_ms = %d, want 100", ms)
		}
		if len(events(s, vocab.EventTimeoutHeaderInvalid)) != 0 {
			t.Error("a valid header was recorded as invalid")
		}

		if got := v.do(t, http.MethodGet, "/probe", http.Header{connectTimeout: {"100ms"}}); got.code != http.StatusNoContent {
			t.Fatalf("malformed header: status %d %q", got.code, got.body)
		}
		if d := receive(t, probes, "the probe's budget"); d > 2*time.Second || d < 1900*time.Millisecond {
			t.Errorf("with a malformed header, the budget is %s, want the default 2s", d)
		}
		s = v.serverSpan(t, a.spanName(http.MethodGet, "/probe"))
		evs := events(s, vocab.EventTimeoutHeaderInvalid)
		if len(evs) != 1 {
			t.Fatalf("%d %s events, want 1", len(evs), vocab.EventTimeoutHeaderInvalid)
		}
		if why, _ := testkit.AttrOf(evs[0].Attributes, vocab.AttrTimeoutHeaderError); !strings.Contains(why.AsString(), connectTimeout) || !strings.Contains(why.AsString(), "malformed") {
			t.Errorf("%s = %q, want it to name the header and say malformed", vocab.AttrTimeoutHeaderError, why.AsString())
		}
		if src := mustAttr(t, s, vocab.AttrDeadlineSource).AsString(); src != "default" {
			t.Errorf("telltale.deadline.source = %q, want default", src)
		}
	})
}

// A success given though a call failed is marked degraded, searchable, and
// is an anomaly; a clean success is neither.
func TestDegradedAnswer(t *testing.T) {
	healthy := payloadServer(t, 1<<10)
	down := refusedURL(t)
	forEach(t, func(t *testing.T, a adapter) {
		v := newEnv(t, a, sampleAll)
		v.serve(t, stack{},
			route{http.MethodGet, "/failed-call", func(ctx context.Context) (reply, error) {
				_ = fetch(ctx, v.client, down) // falls back
				return reply{http.StatusOK, "from the cache"}, nil
			}},
			route{http.MethodGet, "/clean", func(ctx context.Context) (reply, error) {
				if err := fetch(ctx, v.client, healthy.URL); err != nil {
					return reply{}, err
				}
				return reply{http.StatusOK, "fresh"}, nil
			}},
		)
		for _, c := range []struct {
			template string
			degraded bool
		}{{"/failed-call", true}, {"/clean", false}} {
			if got := v.do(t, http.MethodGet, c.template, nil); got.code != http.StatusOK {
				t.Fatalf("%s: status %d %q", c.template, got.code, got.body)
			}
			s := v.serverSpan(t, a.spanName(http.MethodGet, c.template))
			degraded, _ := attr(s, vocab.AttrDegraded)
			anomalous, _ := attr(s, vocab.AttrAnomaly)
			if degraded.AsBool() != c.degraded || anomalous.AsBool() != c.degraded {
				t.Errorf("%s: telltale.degraded %s, telltale.anomaly %s, want both %v", c.template, degraded.Emit(), anomalous.Emit(), c.degraded)
			}
		}
	})
}

// A caller that goes away well before the deadline it propagated canceled
// on purpose (a hedged request, an errgroup's first error): the request
// is no anomaly, and an unsampled one exports nothing.
func TestDeliberateCancellationIsNotExported(t *testing.T) {
	forEach(t, func(t *testing.T, a adapter) {
		v := newEnv(t, a, sampleNone)
		seen := make(seenIDs, 1)
		entered := make(chan struct{}, 1)
		v.serve(t, stack{timeout: 5 * time.Second, trustHeader: true}, route{http.MethodGet, "/wait", func(ctx context.Context) (reply, error) {
			seen.note(ctx)
			entered <- struct{}{}
			<-ctx.Done()
			return reply{}, ctx.Err()
		}})
		v.abandon(t, "/wait", http.Header{connectTimeout: {"2000"}, "Traceparent": {callerTraceparent}}, entered)
		if sc := receive(t, seen, "the handler's span context"); sc.TraceID().String() != callerTrace {
			t.Errorf("the handler is in trace %s, want the caller's %s", sc.TraceID(), callerTrace)
		}
		v.waitServed(t, 1)
		for _, s := range v.rec.Ended() {
			t.Errorf("a deliberate cancellation exported %s %q: %v", s.SpanKind(), s.Name(), s.Attributes())
		}
	})
}

// Whether a caller gave up is judged by when it went away, not by when the
// handler returned: a caller that canceled at once is no caller that gave
// up at its deadline, though the handler, after it, ran a fallback until
// past that deadline's tolerance.
func TestCancellationIsJudgedWhenTheCallerWent(t *testing.T) {
	forEach(t, func(t *testing.T, a adapter) {
		v := newEnv(t, a, sampleAll)
		entered := make(chan struct{}, 1)
		v.serve(t, stack{timeout: 5 * time.Second, trustHeader: true}, route{http.MethodGet, "/wait", func(ctx context.Context) (reply, error) {
			entered <- struct{}{}
			<-ctx.Done()                       // the caller cancels at once
			time.Sleep(560 * time.Millisecond) // a fallback, past 600 ms less its 60 ms tolerance
			return reply{}, ctx.Err()
		}})
		v.abandon(t, "/wait", http.Header{connectTimeout: {"600"}}, entered)
		s := v.serverSpan(t, a.spanName(http.MethodGet, "/wait"))
		if !mustAttr(t, s, vocab.AttrClientGone).AsBool() {
			t.Error("the server span does not say the client went away")
		}
		if g, ok := attr(s, vocab.AttrCallerGaveUp); ok && g.AsBool() {
			t.Errorf("a caller that canceled at once is marked %s", vocab.AttrCallerGaveUp)
		}
		if an, ok := attr(s, vocab.AttrAnomaly); ok && an.AsBool() {
			t.Error("a deliberate cancellation is marked telltale.anomaly")
		}
	})
}

// roundTripperFunc is a function as an http.RoundTripper.
type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// recordOnly records every span it decides, and samples none.
type recordOnly struct{}

func (recordOnly) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	return sdktrace.SamplingResult{Decision: sdktrace.RecordOnly, Tracestate: trace.SpanContextFromContext(p.ParentContext).TraceState()}
}

func (recordOnly) Description() string { return "RecordOnly" }
