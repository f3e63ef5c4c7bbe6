package middleware_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	echomw "github.com/labstack/echo/v4/middleware"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/telltale-go/telltale/internal/testkit"
	ttmw "github.com/telltale-go/telltale/middleware"
	"github.com/telltale-go/telltale/sampling"
	"github.com/telltale-go/telltale/transport"
	"github.com/telltale-go/telltale/vocab"
)

// The server span is named by the route template, not the raw path, and
// carries it as http.route; a request that matched no route gets the method
// alone, so that paths never make span names unbounded.
func TestTraceNamesSpansByRouteTemplate(t *testing.T) {
	v := newEnv(t)
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp, Propagators: v.prop}))
	v.e.GET("/users/:id", func(c echo.Context) error { return c.String(http.StatusOK, c.Param("id")) })
	v.e.POST("/users/:id/files/*", func(c echo.Context) error { return c.NoContent(http.StatusCreated) })
	v.start(t)

	if code, body := v.do(t, http.MethodGet, "/users/42", nil); code != http.StatusOK || body != "42" {
		t.Fatalf("GET /users/42 = %d %q", code, body)
	}
	s := v.serverSpan(t, "GET /users/:id")
	if got := mustAttr(t, s, "http.route").AsString(); got != "/users/:id" {
		t.Errorf("http.route = %q", got)
	}
	if got := mustAttr(t, s, "http.response.status_code").AsInt64(); got != http.StatusOK {
		t.Errorf("status attribute = %d", got)
	}
	if s.Status().Code != codes.Unset {
		t.Errorf("status = %v, want unset", s.Status())
	}

	v.do(t, http.MethodPost, "/users/7/files/a/b.txt", nil)
	v.serverSpan(t, "POST /users/:id/files/*")

	if code, _ := v.do(t, http.MethodGet, "/nowhere/123", nil); code != http.StatusNotFound {
		t.Fatalf("unrouted GET = %d", code)
	}
	s = v.serverSpan(t, "GET")
	if got := mustAttr(t, s, "url.path").AsString(); got != "/nowhere/123" {
		t.Errorf("url.path = %q", got)
	}
}

// An error a handler returns is handled once — Echo's error handler runs
// exactly once, while the span is open — and the span records the status the
// client got; a 5xx is recorded as an error with error.type, a 4xx is not.
func TestTraceRecordsStatusAndErrorOnce(t *testing.T) {
	v := newEnv(t)
	handled := v.countErrorHandling()
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp}))
	v.e.GET("/boom", func(c echo.Context) error { return errors.New("boom") })
	v.e.GET("/missing/:id", func(c echo.Context) error { return echo.NewHTTPError(http.StatusNotFound, "no such thing") })
	v.start(t)

	if code, _ := v.do(t, http.MethodGet, "/boom", nil); code != http.StatusInternalServerError {
		t.Fatalf("GET /boom = %d", code)
	}
	s := v.serverSpan(t, "GET /boom")
	if s.Status().Code != codes.Error {
		t.Errorf("status = %v, want Error", s.Status())
	}
	if got := mustAttr(t, s, "http.response.status_code").AsInt64(); got != 500 {
		t.Errorf("status attribute = %d, want 500", got)
	}
	if got := mustAttr(t, s, "error.type").AsString(); got != "*errors.errorString" {
		t.Errorf("error.type = %q", got)
	}
	var exceptions int
	for _, ev := range s.Events() {
		if ev.Name == "exception" {
			exceptions++
		}
	}
	if exceptions != 1 {
		t.Errorf("%d exception events, want 1", exceptions)
	}

	if code, body := v.do(t, http.MethodGet, "/missing/1", nil); code != http.StatusNotFound || !strings.Contains(body, "no such thing") {
		t.Fatalf("GET /missing/1 = %d %q", code, body)
	}
	s = v.serverSpan(t, "GET /missing/:id")
	if s.Status().Code != codes.Unset {
		t.Errorf("4xx status = %v, want unset", s.Status())
	}
	if _, ok := attr(s, "error.type"); ok {
		t.Errorf("4xx span has error.type")
	}
	if got := handled.Load(); got != 2 {
		t.Errorf("error handler ran %d times for 2 errors", got)
	}
}

// spanText is everything a span carries as text: status, attributes, event
// attributes.
func spanText(s sdktrace.ReadOnlySpan) string {
	var b strings.Builder
	b.WriteString(s.Status().Description)
	for _, a := range s.Attributes() {
		b.WriteString("\n" + string(a.Key) + "=" + a.Value.String())
	}
	for _, ev := range s.Events() {
		for _, a := range ev.Attributes {
			b.WriteString("\n" + ev.Name + "." + string(a.Key) + "=" + a.Value.String())
		}
	}
	return b.String()
}

// The exception Trace records for a 5xx carries the handler's error text
// with the query values of the URL a failed http.Client call names
// redacted.
func TestTraceExceptionRedactsQueryValues(t *testing.T) {
	v := newEnv(t)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close() // connection refused
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp}))
	v.e.GET("/call", func(c echo.Context) error {
		req, _ := http.NewRequestWithContext(c.Request().Context(), http.MethodGet, deadURL+"/api?key=hunter2", nil)
		resp, err := v.client.Do(req)
		if err != nil {
			return echo.NewHTTPError(http.StatusBadGateway, "upstream failed").WithInternal(err)
		}
		resp.Body.Close()
		return c.NoContent(http.StatusOK)
	})
	v.start(t)
	if code, _ := v.do(t, http.MethodGet, "/call", nil); code != http.StatusBadGateway {
		t.Fatalf("status %d", code)
	}
	s := v.serverSpan(t, "GET /call")
	if txt := spanText(s); strings.Contains(txt, "hunter2") {
		t.Errorf("server span carries a query value:\n%s", txt)
	}
}

// With Echo's Recover before Trace, as the package doc recommends, a
// panicking handler's span records the 500 Recover answers, as an error.
func TestPanicWithRecoverOutsideTraceIsRecorded(t *testing.T) {
	v := newEnv(t)
	v.e.Use(echomw.Recover())
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp}))
	v.e.GET("/panic", func(c echo.Context) error { panic("boom") })
	v.start(t)
	if code, _ := v.do(t, http.MethodGet, "/panic", nil); code != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", code)
	}
	s := v.serverSpan(t, "GET /panic")
	if got, ok := attr(s, "http.response.status_code"); !ok || got.AsInt64() != 500 {
		t.Errorf("server span status code %v (present %v), want 500", got.AsInt64(), ok)
	}
	if s.Status().Code != codes.Error {
		t.Errorf("server span status %v, want Error", s.Status())
	}
}

// A handler that parses a multipart upload too large for memory leaves its
// files in the temporary directory, and net/http removes them after the
// handler — if it finds the form on the request it served. Behind plain
// otelhttp it does; behind telltale's middleware, sampled or not, alone or
// together, it must too, though each hands the handler a copy of the
// request — whether the handler returns, fails or panics (Echo's Recover
// outside), and below a middleware of Echo's own that hands on a copy
// without putting the request back (ContextTimeout).
func TestMultipartTempFilesAreRemovedAsBehindOtelhttp(t *testing.T) {
	stacks := []string{"otelhttp", "telltale sampled", "telltale unsampled", "deadline", "leaks", "trace, then ContextTimeout"}
	for _, stack := range stacks {
		for _, ending := range []string{"returns", "fails", "panics"} {
			t.Run(stack+"/"+ending, func(t *testing.T) {
				tmp := t.TempDir()
				t.Setenv("TMPDIR", tmp)
				v := newEnv(t)
				if stack == "telltale unsampled" {
					v = newUnsampledEnv(t)
				}
				v.e.Use(echomw.Recover())
				var h http.Handler = v.e
				switch stack {
				case "otelhttp":
					h = otelhttp.NewHandler(v.e, "server", otelhttp.WithTracerProvider(v.tp))
				case "deadline":
					v.e.Use(ttmw.Deadline(2 * time.Second))
				case "leaks":
					v.e.Use(ttmw.Leaks())
				case "trace, then ContextTimeout":
					v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp, Propagators: v.prop}))
					v.e.Use(echomw.ContextTimeout(2 * time.Second))
				default:
					v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp, Propagators: v.prop}))
					v.e.Use(ttmw.Deadline(2 * time.Second))
					v.e.Use(ttmw.Leaks())
				}
				spilled := make(chan int, 1)
				v.e.POST("/upload", func(c echo.Context) error {
					if err := c.Request().ParseMultipartForm(1 << 10); err != nil {
						return err
					}
					files, _ := os.ReadDir(tmp)
					spilled <- len(files)
					switch ending {
					case "fails":
						return errors.New("after parsing the upload")
					case "panics":
						panic("after parsing the upload")
					}
					return c.NoContent(http.StatusNoContent)
				})
				srv := httptest.NewServer(h)
				defer srv.Close()

				var body bytes.Buffer
				mw := multipart.NewWriter(&body)
				fw, _ := mw.CreateFormFile("file", "big.bin")
				_, _ = fw.Write(bytes.Repeat([]byte("x"), 64<<10))
				_ = mw.Close()
				resp, err := srv.Client().Post(srv.URL+"/upload", mw.FormDataContentType(), &body)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				want := http.StatusInternalServerError
				if ending == "returns" {
					want = http.StatusNoContent
				}
				if resp.StatusCode != want {
					t.Fatalf("status %d, want %d", resp.StatusCode, want)
				}
				if n := <-spilled; n == 0 {
					t.Fatal("the upload did not spill to a temporary file: the test proves nothing")
				}
				testkit.Eventually(t, "the upload's temporary files removed", func() bool {
					files, _ := os.ReadDir(tmp)
					return len(files) == 0
				})
			})
		}
	}
}

// newSamplingEnv is newEnv with the tracer provider sampling.NewTracerProvider
// builds, sampling every request at the head or none.
func newSamplingEnv(t *testing.T, sampled bool, opts ...transport.Option) *env {
	t.Helper()
	head := sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0))
	if sampled {
		head = sdktrace.AlwaysSample()
	}
	rec := tracetest.NewSpanRecorder()
	return newEnvWith(t, rec, sampling.NewTracerProvider(head, sdktrace.WithSpanProcessor(rec)), opts...)
}

// traceOf waits until the trace of the request that answered has its
// server span and want client spans exported, and returns them.
func (v *env) traceOf(t *testing.T, id trace.TraceID, want int) (sdktrace.ReadOnlySpan, []sdktrace.ReadOnlySpan) {
	t.Helper()
	var server sdktrace.ReadOnlySpan
	var clients []sdktrace.ReadOnlySpan
	eventually(t, "the request's trace", func() bool {
		server, clients = nil, clients[:0]
		for _, s := range v.rec.Ended() {
			switch {
			case s.SpanContext().TraceID() != id:
			case s.SpanKind() == trace.SpanKindServer:
				server = s
			case s.SpanKind() == trace.SpanKindClient:
				clients = append(clients, s)
			}
		}
		return server != nil && len(clients) >= want
	})
	slices.SortFunc(clients, func(a, b sdktrace.ReadOnlySpan) int { return a.StartTime().Compare(b.StartTime()) })
	return server, clients
}

// The replayed trace of a request is its whole local tree as a sampled
// run exports it: the server span and every client span, healthy calls
// too, with the same names, parents, attributes, events and statuses —
// ids, times and the replay mark aside. Each run is the same request: a
// fan-out to two healthy upstreams and one that is down (a degraded
// answer), to one that black-holes (a 504), or with a body left open.
func TestReplayedTraceIsTheSampledOne(t *testing.T) {
	healthy1, healthy2 := payloadServer(t), payloadServer(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	down := "http://" + ln.Addr().String() + "/items"
	_ = ln.Close()
	hole := blackHole(t)
	call := func(v *env, c echo.Context, url string, leak bool) {
		resp, err := v.client.Do(mustRequest(t, c, url))
		if err != nil {
			return
		}
		if !leak {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	scenarios := []struct {
		name    string
		calls   int
		status  int
		handler func(v *env) echo.HandlerFunc
	}{
		{"degraded fan-out", 3, http.StatusOK, func(v *env) echo.HandlerFunc {
			return func(c echo.Context) error {
				call(v, c, healthy1.URL+"/articles?page=1", false)
				call(v, c, healthy2.URL+"/users", false)
				call(v, c, down, false)
				return c.String(http.StatusOK, "partial")
			}
		}},
		{"504", 2, http.StatusGatewayTimeout, func(v *env) echo.HandlerFunc {
			return func(c echo.Context) error {
				call(v, c, healthy1.URL+"/articles", false)
				resp, err := v.client.Do(mustRequest(t, c, hole.URL))
				if err == nil {
					resp.Body.Close()
				}
				return err
			}
		}},
		{"leak", 2, http.StatusOK, func(v *env) echo.HandlerFunc {
			return func(c echo.Context) error {
				call(v, c, healthy1.URL+"/articles", false)
				call(v, c, healthy2.URL+"/count", true)
				return c.NoContent(http.StatusOK)
			}
		}},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			type run struct {
				server  sdktrace.ReadOnlySpan
				clients []sdktrace.ReadOnlySpan
			}
			var runs [2]run
			envs := [2]*env{newSamplingEnv(t, true), newSamplingEnv(t, false)}
			seen := make(seenIDs, 1)
			for _, v := range envs {
				v.stack(200*time.Millisecond, nil)
				h := sc.handler(v)
				v.e.GET("/feed/:id", func(c echo.Context) error { seen.note(c); return h(c) })
			}
			// One server for both runs: the same request, to the same host
			// and port, sampled or not.
			front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				envs[len(r.Header.Get("X-Unsampled"))%2].e.ServeHTTP(w, r)
			}))
			defer front.Close()
			for i, v := range envs {
				v.srv = front
				var h http.Header
				if i == 1 {
					h = http.Header{"X-Unsampled": {"1"}}
				}
				if code, _ := v.do(t, http.MethodGet, "/feed/1", h); code != sc.status {
					t.Fatalf("run %d: status %d, want %d", i, code, sc.status)
				}
				runs[i].server, runs[i].clients = v.traceOf(t, (<-seen).TraceID(), sc.calls)
			}
			sampled, replayed := runs[0], runs[1]
			if v, _ := attrOf(replayed.server.Attributes(), vocab.AttrReplayed); !v.AsBool() {
				t.Fatal("the unsampled request was not replayed")
			}
			if len(replayed.clients) != len(sampled.clients) {
				t.Fatalf("%d client spans replayed, %d sampled", len(replayed.clients), len(sampled.clients))
			}
			if d := testkit.SpanDiff(sampled.server, replayed.server); len(d) > 0 {
				t.Errorf("server spans differ:\n%s", strings.Join(d, "\n"))
			}
			for i := range sampled.clients {
				a, b := sampled.clients[i], replayed.clients[i]
				if b.Parent().SpanID() != replayed.server.SpanContext().SpanID() || a.Parent().SpanID() != sampled.server.SpanContext().SpanID() {
					t.Errorf("client span %q is not under its server span", b.Name())
				}
				if d := testkit.SpanDiff(a, b); len(d) > 0 {
					t.Errorf("client spans %q differ:\n%s", a.Name(), strings.Join(d, "\n"))
				}
			}
		})
	}
}

// A success given though a call failed, or after the handler reported an
// anomaly, is marked degraded — searchable — and is an anomaly; a clean
// success is neither.
func TestDegradedAnswer(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	down := "http://" + ln.Addr().String()
	_ = ln.Close()
	ok := payloadServer(t)
	v := newEnv(t)
	v.stack(time.Second, nil)
	v.e.GET("/failed-call", func(c echo.Context) error {
		if resp, err := v.client.Do(mustRequest(t, c, down)); err == nil {
			resp.Body.Close()
		}
		return c.NoContent(http.StatusOK)
	})
	v.e.GET("/reported", func(c echo.Context) error {
		ttmw.ReportAnomaly(c.Request().Context(), "fallback to the cache")
		return c.NoContent(http.StatusOK)
	})
	v.e.GET("/clean", func(c echo.Context) error {
		resp, err := v.client.Do(mustRequest(t, c, ok.URL))
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	})
	v.start(t)
	for path, want := range map[string]bool{"/failed-call": true, "/reported": true, "/clean": false} {
		v.do(t, http.MethodGet, path, nil)
		s := v.serverSpan(t, "GET "+path)
		degraded, _ := attr(s, vocab.AttrDegraded)
		anomaly, _ := attr(s, vocab.AttrAnomaly)
		if degraded.AsBool() != want || anomaly.AsBool() != want {
			t.Errorf("%s: degraded %v, anomaly %v, want %v", path, degraded.Emit(), anomaly.Emit(), want)
		}
	}
}

// The exception and the status of a 5xx read as sentences — the handler's
// message and its cause — never as Go struct formatting.
func TestErrorMessagesAreSentences(t *testing.T) {
	v := newEnv(t)
	hole := blackHole(t)
	v.stack(50*time.Millisecond, nil)
	v.e.GET("/slow", func(c echo.Context) error {
		resp, err := v.client.Do(mustRequest(t, c, hole.URL))
		if err == nil {
			resp.Body.Close()
		}
		return err
	})
	v.start(t)
	if code, body := v.do(t, http.MethodGet, "/slow", nil); code != http.StatusGatewayTimeout || body != `{"message":"request deadline of 50ms exceeded","timeout_ms":50}`+"\n" {
		t.Fatalf("got %d %q", code, body)
	}
	s := v.serverSpan(t, "GET /slow")
	ev := s.Events()[0]
	msg, _ := attrOf(ev.Attributes, "exception.message")
	for _, text := range []string{msg.AsString(), s.Status().Description} {
		if !strings.HasPrefix(text, "request deadline of 50ms exceeded: ") || strings.Contains(text, "&{") || strings.Contains(text, "code=") {
			t.Errorf("message %q: want a sentence, the deadline then its cause", text)
		}
	}
}

// switchable is a tracer provider that delegates to another, which can
// change: as the global provider does before and after otel.SetTracerProvider.
type switchable struct {
	embedded.TracerProvider
	to atomic.Pointer[trace.TracerProvider]
}

func (s *switchable) set(tp trace.TracerProvider) { s.to.Store(&tp) }
func (s *switchable) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return switchTracer{s: s, name: name, opts: opts}
}

type switchTracer struct {
	embedded.Tracer
	s    *switchable
	name string
	opts []trace.TracerOption
}

func (t switchTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	return (*t.s.to.Load()).Tracer(t.name, t.opts...).Start(ctx, name, opts...)
}

// With tracing off — a no-op provider, as the global one is before any is
// set — and a caller that sends an unsampled traceparent, nothing is kept
// and nothing is logged; once the provider is one that replays, the
// middleware's requests are replayed: the decision is per request, from
// the provider it used.
func TestTracingOffIsNotAnUnsampledRequest(t *testing.T) {
	logs := &testkit.SyncBuffer{}
	global := &switchable{}
	global.set(tracenoop.NewTracerProvider())

	rec := tracetest.NewSpanRecorder()
	tp := sampling.NewTracerProvider(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0)), sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	v := newEnvWith(t, rec, tp)
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: global, Logger: testkit.Logger(logs), Propagators: v.prop}))
	v.e.GET("/fail", func(c echo.Context) error { return errors.New("down") })
	v.start(t)
	unsampled := http.Header{"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}}
	for range 3 {
		if code, _ := v.do(t, http.MethodGet, "/fail", unsampled); code != http.StatusInternalServerError {
			t.Fatalf("status %d", code)
		}
	}
	if logs.String() != "" {
		t.Errorf("with tracing off, logged:\n%s", logs)
	}
	global.set(tp) // tracing on
	v.do(t, http.MethodGet, "/fail", unsampled)
	v.serverSpan(t, "GET /fail")
	if logs.String() != "" {
		t.Errorf("logged:\n%s", logs)
	}
}

// An unsampled request keeps what a sampled span keeps: the newest 128
// events, however many a long-lived request reports, and says how many it
// dropped.
func TestUnsampledEventsAreBounded(t *testing.T) {
	v := newUnsampledEnv(t)
	v.stack(time.Minute, nil)
	seen := make(seenIDs, 1)
	const reports = 50_000
	v.e.GET("/stream", func(c echo.Context) error {
		seen.note(c)
		for i := range reports {
			ttmw.ReportAnomaly(c.Request().Context(), "item "+strconv.Itoa(i)+" degraded")
		}
		return c.NoContent(http.StatusOK)
	})
	v.start(t)
	v.do(t, http.MethodGet, "/stream", nil)
	server := v.exported(t, (<-seen).TraceID(), 1)[0]
	if n := len(server.Events()); n != 128 {
		t.Errorf("%d events replayed, want the SDK's 128", n)
	}
	if last, _ := attrOf(server.Events()[127].Attributes, vocab.AttrAnomalyReason); last.AsString() != "item 49999 degraded" {
		t.Errorf("the newest event kept is %q, want the last reported", last.AsString())
	}
	if got := mustAttr(t, server, vocab.AttrReplayEventsDropped).AsInt64(); got != reports-128 {
		t.Errorf("%s = %d, want %d", vocab.AttrReplayEventsDropped, got, reports-128)
	}
}

// A long unsampled request — a stream polling an upstream — holds the
// same memory after 20 000 healthy calls as after 1 000: past MaxCalls,
// it keeps nothing more per call.
func TestLongUnsampledRequestHoldsBoundedMemory(t *testing.T) {
	v := newUnsampledEnv(t)
	v.stack(time.Minute, nil)
	tr := transport.New(memoryUpstream{}, transport.WithTracerProvider(v.tp), transport.WithLogger(slog.New(slog.DiscardHandler)))
	t.Cleanup(func() { _ = tr.Close() })
	client := tr.Client()
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	var grown int64
	v.e.GET("/stream", func(c echo.Context) error {
		poll := func(n int) {
			for range n {
				req, _ := http.NewRequestWithContext(c.Request().Context(), http.MethodGet, "http://articles.internal/items", nil)
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		}
		poll(1000)
		before := heap()
		poll(19_000)
		grown = int64(heap()) - int64(before)
		return c.NoContent(http.StatusOK)
	})
	v.start(t)
	v.do(t, http.MethodGet, "/stream", nil)
	t.Logf("%d bytes more held after 19 000 more healthy calls", grown)
	if grown > 64<<10 {
		t.Errorf("the request holds %d bytes more after 19 000 more healthy calls (%.1f a call): it keeps something per call", grown, float64(grown)/19_000)
	}
}

// The calls a request's detached work makes after the request was
// exported are replayed into its trace within the same bound as the
// request's own: 128 client spans, not one per call for as long as the
// work goes on.
func TestCallsAfterTheExportAreBounded(t *testing.T) {
	v := newUnsampledEnv(t)
	v.stack(time.Minute, nil)
	tr := transport.New(memoryUpstream{}, transport.WithTracerProvider(v.tp), transport.WithLogger(slog.New(slog.DiscardHandler)))
	t.Cleanup(func() { _ = tr.Close() })
	client := tr.Client()
	seen := make(seenIDs, 1)
	detached := make(chan context.Context, 1)
	v.e.GET("/fail", func(c echo.Context) error {
		seen.note(c)
		detached <- context.WithoutCancel(c.Request().Context())
		return c.NoContent(http.StatusBadGateway)
	})
	v.start(t)
	v.do(t, http.MethodGet, "/fail", nil)
	id := (<-seen).TraceID()
	v.exported(t, id, 1) // the server span: the request was exported
	ctx := <-detached
	const calls = 300
	for range calls {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://articles.internal/items", nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	n := 0
	for _, s := range v.rec.Ended() {
		if s.SpanContext().TraceID() == id && s.SpanKind() == trace.SpanKindClient {
			n++
		}
	}
	const bound = 128 // the client spans of a replayed trace, as the README says
	if n != bound {
		t.Errorf("%d of the %d calls after the export replayed, want %d", n, calls, bound)
	}
}

// ReportAnomaly after the request ended is dropped, and a warning says so
// once.
func TestReportAnomalyAfterTheRequestWarnsOnce(t *testing.T) {
	logs := &testkit.SyncBuffer{}
	v := newEnv(t)
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp, Logger: testkit.Logger(logs)}))
	late := make(chan context.Context, 1)
	v.e.GET("/", func(c echo.Context) error { late <- c.Request().Context(); return c.NoContent(http.StatusOK) })
	v.start(t)
	v.do(t, http.MethodGet, "/", nil)
	ctx := <-late
	v.serverSpan(t, "GET /")
	ttmw.ReportAnomaly(ctx, "too late")
	ttmw.ReportAnomaly(ctx, "later still")
	if n := strings.Count(logs.String(), "after its request ended"); n != 1 {
		t.Errorf("warned %d times:\n%s", n, logs)
	}
}

// A replayed span is started in the request's context, without its
// cancellation: span processors that read the baggage see the request's.
func TestReplayedSpansSeeTheRequestsBaggage(t *testing.T) {
	seen := &baggageSeen{}
	rec := tracetest.NewSpanRecorder()
	tp := sampling.NewTracerProvider(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0)), sdktrace.WithSpanProcessor(rec), sdktrace.WithSpanProcessor(seen))
	defer tp.Shutdown(context.Background())
	v := newEnvWith(t, rec, tp)
	v.prop = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	v.stack(time.Second, nil)
	v.e.GET("/fail", func(c echo.Context) error { return c.NoContent(http.StatusBadGateway) })
	v.start(t)
	v.do(t, http.MethodGet, "/fail", http.Header{"Baggage": {"tenant=acme"}})
	v.serverSpan(t, "GET /fail")
	if got := seen.get(); got != "acme" {
		t.Errorf("the processor saw tenant %q in the replayed span's context, want acme", got)
	}
}

type baggageSeen struct {
	mu     sync.Mutex
	tenant string
}

func (b *baggageSeen) OnStart(ctx context.Context, s sdktrace.ReadWriteSpan) {
	if s.SpanKind() == trace.SpanKindServer {
		b.mu.Lock()
		b.tenant = baggage.FromContext(ctx).Member("tenant").Value()
		b.mu.Unlock()
	}
}
func (b *baggageSeen) get() string                      { b.mu.Lock(); defer b.mu.Unlock(); return b.tenant }
func (b *baggageSeen) OnEnd(sdktrace.ReadOnlySpan)      {}
func (b *baggageSeen) Shutdown(context.Context) error   { return nil }
func (b *baggageSeen) ForceFlush(context.Context) error { return nil }

// A request still running when its slow threshold passes gets an event
// stamped then, is an anomaly, and is exported though unsampled.
func TestSlowRequest(t *testing.T) {
	v := newUnsampledEnv(t)
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp, Propagators: v.prop, Slow: time.Hour,
		SlowRoutes: map[string]time.Duration{"/report": 40 * time.Millisecond}}))
	seen := make(seenIDs, 2)
	v.e.GET("/report", func(c echo.Context) error {
		seen.note(c)
		time.Sleep(70 * time.Millisecond)
		return c.NoContent(http.StatusOK)
	})
	v.e.GET("/quick", func(c echo.Context) error {
		seen.note(c)
		time.Sleep(70 * time.Millisecond)
		return c.NoContent(http.StatusOK)
	})
	v.start(t)
	v.do(t, http.MethodGet, "/report", nil)
	server := v.exported(t, (<-seen).TraceID(), 1)[0]
	var ev sdktrace.Event
	for _, e := range server.Events() {
		if e.Name == vocab.EventRequestSlow {
			ev = e
		}
	}
	if at := ev.Time.Sub(server.StartTime()); at < 35*time.Millisecond || at > 45*time.Millisecond {
		t.Errorf("slow event %s after the start (events %v), want at the 40 ms threshold", at, server.Events())
	}
	if th, _ := attrOf(ev.Attributes, vocab.AttrRequestSlowThreshold); th.AsInt64() != 40 {
		t.Errorf("threshold %v", th.Emit())
	}
	v.do(t, http.MethodGet, "/quick", nil) // its route's threshold is the hour of Slow
	quick := (<-seen).TraceID()
	time.Sleep(50 * time.Millisecond)
	for _, s := range v.rec.Ended() {
		if s.SpanContext().TraceID() == quick {
			t.Error("a request under its threshold was exported")
		}
	}
}

// An exported anomaly trace says how many like it the budget refused since
// the previous one.
func TestExportedAnomalySaysHowManyLikeItWereRefused(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sampling.NewTracerProvider(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0)), sampling.WithBudget(1),
		sampling.WithLogger(slog.New(slog.DiscardHandler)), sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	v := newEnvWith(t, rec, tp)
	v.stack(time.Second, nil)
	v.e.GET("/fail", func(c echo.Context) error { return c.NoContent(http.StatusBadGateway) })
	v.start(t)
	for range 20 {
		v.do(t, http.MethodGet, "/fail", nil)
	}
	time.Sleep(1100 * time.Millisecond) // a second later: the anomaly is rare again
	before := len(rec.Ended())
	v.do(t, http.MethodGet, "/fail", nil)
	eventually(t, "the next export", func() bool { return len(rec.Ended()) > before })
	last := rec.Ended()[len(rec.Ended())-1]
	if n, _ := attr(last, vocab.AttrReplaySimilarRefused); n.AsInt64() < 15 {
		t.Errorf("%s = %v, want the ~19 refused in the flood", vocab.AttrReplaySimilarRefused, n.Emit())
	}
}
