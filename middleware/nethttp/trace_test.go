package nethttp_test

import (
	"bytes"
	"context"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/middleware/nethttp"
	"github.com/telltale-go/telltale/vocab"
)

// Behind the whole stack, Trace(Deadline(Leaks(mux))), the server span is
// named by the pattern the mux matched on the copy of the request it got,
// "GET /users/{id}", and carries it as http.route with the status, as do
// otelhttp's metrics; a request no pattern matched keeps the method alone.
func TestTraceNamesSpanByPatternBehindTheStack(t *testing.T) {
	v := newEnv(t)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	v.mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(r.PathValue("id")))
	})
	trace := nethttp.TraceWithConfig(nethttp.TraceConfig{TracerProvider: v.tp, MeterProvider: mp, Propagators: v.prop})
	v.start(t, trace(nethttp.Deadline(2*time.Second)(nethttp.Leaks()(v.mux))))

	if got := v.do(t, http.MethodGet, "/users/42", nil); got.code != http.StatusOK || got.body != "42" {
		t.Fatalf("GET /users/42 = %d %q", got.code, got.body)
	}
	s := v.serverSpan(t, "GET /users/{id}")
	if got := mustAttr(t, s, "http.route").AsString(); got != "/users/{id}" {
		t.Errorf("http.route = %q", got)
	}
	if got := mustAttr(t, s, "http.response.status_code").AsInt64(); got != http.StatusOK {
		t.Errorf("status attribute = %d", got)
	}
	if s.Status().Code != codes.Unset {
		t.Errorf("status = %v, want unset", s.Status())
	}
	eventually(t, "http.server.request.duration with http.route", func() bool {
		return durationRoutes(t, reader)["/users/{id}"]
	})

	if got := v.do(t, http.MethodGet, "/nowhere/123", nil); got.code != http.StatusNotFound {
		t.Fatalf("unrouted GET = %d", got.code)
	}
	s = v.serverSpan(t, "GET")
	if _, ok := attr(s, "http.route"); ok {
		t.Errorf("a request no pattern matched has http.route: %v", s.Attributes())
	}
}

// durationRoutes returns the http.route values of otelhttp's
// http.server.request.duration data points.
func durationRoutes(t *testing.T, reader *sdkmetric.ManualReader) map[string]bool {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	routes := make(map[string]bool)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "http.server.request.duration" {
				continue
			}
			h, ok := m.Data.(metricdata.Histogram[float64])
			if !ok {
				t.Fatalf("http.server.request.duration is a %T", m.Data)
			}
			for _, dp := range h.DataPoints {
				if route, ok := dp.Attributes.Value("http.route"); ok {
					routes[route.AsString()] = true
				}
			}
		}
	}
	return routes
}

// Installed inside the mux, Trace knows the route at once: the span is
// named by it, and carries http.route, while the handler runs.
func TestTraceInsideMuxNamesSpanAtOnce(t *testing.T) {
	v := newEnv(t)
	type seen struct {
		name  string
		route string
	}
	got := make(chan seen, 1)
	v.mux.Handle("GET /x/{id}", v.trace()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var s seen
		if span, ok := trace.SpanFromContext(r.Context()).(sdktrace.ReadOnlySpan); ok {
			s.name = span.Name()
			route, _ := attr(span, "http.route")
			s.route = route.AsString()
		}
		got <- s
		w.WriteHeader(http.StatusNoContent)
	})))
	v.start(t, v.mux)

	if r := v.do(t, http.MethodGet, "/x/1", nil); r.code != http.StatusNoContent {
		t.Fatalf("status %d", r.code)
	}
	if s := <-got; s.name != "GET /x/{id}" || s.route != "/x/{id}" {
		t.Errorf("while the handler ran, the span was %q with http.route %q; want GET /x/{id}, /x/{id}", s.name, s.route)
	}
	v.serverSpan(t, "GET /x/{id}")
}

// routeKey keys the routeContext of router.
type routeKey struct{}

// routeContext is where router keeps the route it matched, as chi does in
// its RouteContext.
type routeContext struct{ pattern string }

// router is a stand-in for chi: it runs the middleware installed with use
// before it routes, and the route it matched is known only once the
// handler has run, through routePattern.
type router struct {
	use     func(http.Handler) http.Handler
	article http.Handler // serves /articles/{slug}
}

func (rt router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc := &routeContext{}
	route := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/articles/") {
			http.NotFound(w, r)
			return
		}
		rc.pattern = "/articles/{slug}"
		rt.article.ServeHTTP(w, r)
	})
	rt.use(route).ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), routeKey{}, rc)))
}

func routePattern(r *http.Request) string {
	if rc, ok := r.Context().Value(routeKey{}).(*routeContext); ok {
		return rc.pattern
	}
	return ""
}

// With a router that keeps its route elsewhere, RouteFunc names the span
// once the handler has returned; the request the handler got is never
// written to then, for a goroutine it started may still read it (the race
// detector watches).
func TestTraceRouteFunc(t *testing.T) {
	v := newEnv(t)
	read := make(chan string, 1)
	rt := router{
		use: nethttp.TraceWithConfig(nethttp.TraceConfig{TracerProvider: v.tp, RouteFunc: routePattern}),
		article: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			go func() { read <- r.Clone(context.Background()).Pattern }() // outlives the handler
			w.WriteHeader(http.StatusNoContent)
		}),
	}
	v.start(t, rt)

	if r := v.do(t, http.MethodGet, "/articles/go-1-26", nil); r.code != http.StatusNoContent {
		t.Fatalf("status %d", r.code)
	}
	<-read
	s := v.serverSpan(t, "GET /articles/{slug}")
	if got := mustAttr(t, s, "http.route").AsString(); got != "/articles/{slug}" {
		t.Errorf("http.route = %q", got)
	}
}

// An unsampled request that answers a 5xx is exported all the same, named
// by its pattern, with its status; a healthy one is not.
func TestTraceExportsUnsampledServerError(t *testing.T) {
	v := newUnsampledEnv(t)
	v.mux.HandleFunc("GET /ok", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	v.mux.HandleFunc("GET /boom/{id}", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	})
	v.start(t, v.stack(v.mux))

	v.do(t, http.MethodGet, "/ok", nil)
	if r := v.do(t, http.MethodGet, "/boom/1", nil); r.code != http.StatusInternalServerError {
		t.Fatalf("status %d", r.code)
	}
	s := v.serverSpan(t, "GET /boom/{id}")
	if got := mustAttr(t, s, "http.route").AsString(); got != "/boom/{id}" {
		t.Errorf("http.route = %q", got)
	}
	if got := mustAttr(t, s, "http.response.status_code").AsInt64(); got != http.StatusInternalServerError {
		t.Errorf("status attribute = %d", got)
	}
	if !mustAttr(t, s, vocab.AttrReplayed).AsBool() || s.Status().Code != codes.Error {
		t.Errorf("replayed span: status %v, attributes %v", s.Status(), s.Attributes())
	}
	for _, s := range v.rec.Ended() {
		if s.Name() == "GET /ok" {
			t.Error("a healthy unsampled request was exported")
		}
	}
}

// A skipped request gets no span.
func TestTraceSkipper(t *testing.T) {
	v := newEnv(t)
	v.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	v.mux.HandleFunc("GET /users", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	skip := func(r *http.Request) bool { return r.URL.Path == "/healthz" }
	v.start(t, nethttp.TraceWithConfig(nethttp.TraceConfig{TracerProvider: v.tp, Skipper: skip})(v.mux))
	v.do(t, http.MethodGet, "/healthz", nil)
	v.do(t, http.MethodGet, "/users", nil)
	v.serverSpan(t, "GET /users")
	if n := len(v.rec.Ended()); n != 1 {
		t.Errorf("%d spans, want the one of /users", n)
	}
}

func TestTraceConfigValidation(t *testing.T) {
	bad := map[string]nethttp.TraceConfig{
		"negative slow":       {Slow: -time.Second},
		"negative slow route": {SlowRoutes: map[string]time.Duration{"GET /x": -1}},
	}
	for name, cfg := range bad {
		if _, err := cfg.ToMiddleware(); err == nil || !strings.HasPrefix(err.Error(), "nethttp: Trace: ") {
			t.Errorf("%s: err = %v, want an error prefixed \"nethttp: Trace: \"", name, err)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("TraceWithConfig did not panic on an invalid config")
		}
	}()
	nethttp.TraceWithConfig(nethttp.TraceConfig{Slow: -1})
}

// A handler that parses a multipart upload too large for memory leaves its
// files in the temporary directory, and net/http removes them after the
// handler — if it finds the form on the request it served. Behind plain
// otelhttp it does; behind telltale's middleware, sampled or not, alone or
// together, it must too, though each hands the handler a copy of the
// request — whether the handler returns or panics (a recovering middleware
// outside).
func TestMultipartTempFilesAreRemovedAsBehindOtelhttp(t *testing.T) {
	stacks := []string{"otelhttp", "telltale sampled", "telltale unsampled", "trace with RouteFunc", "deadline", "leaks"}
	for _, stack := range stacks {
		for _, ending := range []string{"returns", "panics"} {
			t.Run(stack+"/"+ending, func(t *testing.T) {
				tmp := t.TempDir()
				t.Setenv("TMPDIR", tmp)
				v := newEnv(t)
				if stack == "telltale unsampled" {
					v = newUnsampledEnv(t)
				}
				spilled := make(chan int, 1)
				v.mux.HandleFunc("POST /upload", func(w http.ResponseWriter, r *http.Request) {
					if err := r.ParseMultipartForm(1 << 10); err != nil {
						http.Error(w, err.Error(), http.StatusBadRequest)
						return
					}
					files, _ := os.ReadDir(tmp)
					spilled <- len(files)
					if ending == "panics" {
						panic("after parsing the upload")
					}
					w.WriteHeader(http.StatusNoContent)
				})
				var h http.Handler
				switch stack {
				case "otelhttp":
					h = otelhttp.NewHandler(v.mux, "server", otelhttp.WithTracerProvider(v.tp))
				case "trace with RouteFunc":
					h = nethttp.TraceWithConfig(nethttp.TraceConfig{TracerProvider: v.tp, RouteFunc: func(*http.Request) string { return "/upload" }})(v.mux)
				case "deadline":
					h = nethttp.Deadline(2 * time.Second)(v.mux)
				case "leaks":
					h = nethttp.Leaks()(v.mux)
				default:
					h = v.stack(v.mux)
				}
				srv := httptest.NewServer(recoverer(h))
				defer srv.Close()

				var body bytes.Buffer
				mw := multipart.NewWriter(&body)
				fw, _ := mw.CreateFormFile("file", "big.bin")
				_, _ = fw.Write(bytes.Repeat([]byte("x"), 64<<10))
				_ = mw.Close()
				ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
				defer cancel()
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/upload", &body)
				req.Header.Set("Content-Type", mw.FormDataContentType())
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				want := http.StatusNoContent
				if ending == "panics" {
					want = http.StatusInternalServerError
				}
				if resp.StatusCode != want {
					t.Fatalf("status %d, want %d", resp.StatusCode, want)
				}
				if n := <-spilled; n == 0 {
					t.Fatal("the upload did not spill to a temporary file: the test proves nothing")
				}
				eventually(t, "the upload's temporary files removed", func() bool {
					files, _ := os.ReadDir(tmp)
					return len(files) == 0
				})
			})
		}
	}
}
