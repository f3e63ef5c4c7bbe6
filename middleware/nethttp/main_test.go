package nethttp_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"

	"github.com/telltale-go/telltale/internal/testkit"
	"github.com/telltale-go/telltale/middleware/nethttp"
	"github.com/telltale-go/telltale/sampling"
	"github.com/telltale-go/telltale/transport"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// requestTimeout bounds every request a test sends.
const requestTimeout = 10 * time.Second

// env is a real server on 127.0.0.1 and a real telltale transport, both
// traced into one span recorder.
type env struct {
	rec    *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	prop   propagation.TextMapPropagator
	tr     *transport.Transport
	client *http.Client // through tr
	mux    *http.ServeMux
	srv    *httptest.Server
}

func newEnv(t *testing.T, opts ...transport.Option) *env {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	return newEnvWith(t, rec, sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)), opts...)
}

// newUnsampledEnv is newEnv with a tracer provider that samples nothing at
// the head, and exports the anomalies telltale finds (package sampling).
func newUnsampledEnv(t *testing.T, opts ...transport.Option) *env {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sampling.NewTracerProvider(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0)), sdktrace.WithSpanProcessor(rec))
	return newEnvWith(t, rec, tp, opts...)
}

func newEnvWith(t *testing.T, rec *tracetest.SpanRecorder, tp *sdktrace.TracerProvider, opts ...transport.Option) *env {
	t.Helper()
	v := &env{rec: rec, tp: tp, prop: propagation.TraceContext{}, mux: http.NewServeMux()}
	t.Cleanup(func() { _ = v.tp.Shutdown(context.Background()) })
	all := append([]transport.Option{
		transport.WithTracerProvider(v.tp),
		transport.WithPropagators(v.prop),
		transport.WithLogger(slog.New(slog.DiscardHandler)),
	}, opts...)
	v.tr = transport.New(nil, all...)
	t.Cleanup(func() { _ = v.tr.Close() })
	v.client = v.tr.Client()
	return v
}

// trace is the Trace middleware recording into v.
func (v *env) trace() func(http.Handler) http.Handler {
	return nethttp.TraceWithConfig(nethttp.TraceConfig{TracerProvider: v.tp, Propagators: v.prop})
}

// stack is the set-up the package doc shows: Trace(Deadline(Leaks(h))).
func (v *env) stack(h http.Handler) http.Handler {
	return v.trace()(nethttp.Deadline(2 * time.Second)(nethttp.Leaks()(h)))
}

// start serves h; call it after the routes are set.
func (v *env) start(t *testing.T, h http.Handler) {
	t.Helper()
	v.srv = httptest.NewServer(h)
	t.Cleanup(v.srv.Close)
}

// response is what a client got.
type response struct {
	code   int
	header http.Header
	body   string
}

// do sends a request to the server with a plain client and returns what
// it answered.
func (v *env) do(t *testing.T, method, path string, header http.Header) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
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
	return response{resp.StatusCode, resp.Header, string(b)}
}

// serverSpan waits until a server span named name has ended and returns it.
func (v *env) serverSpan(t *testing.T, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	return v.waitSpan(t, func(s sdktrace.ReadOnlySpan) bool {
		return s.Name() == name && s.SpanKind().String() == "server"
	}, "server span "+name)
}

// clientSpan waits until a client span has ended and returns it.
func (v *env) clientSpan(t *testing.T) sdktrace.ReadOnlySpan {
	t.Helper()
	return v.waitSpan(t, func(s sdktrace.ReadOnlySpan) bool { return s.SpanKind().String() == "client" }, "client span")
}

// waitSpan waits until a span matching match has ended and returns it.
func (v *env) waitSpan(t *testing.T, match func(sdktrace.ReadOnlySpan) bool, what string) sdktrace.ReadOnlySpan {
	t.Helper()
	return testkit.WaitSpan(t, v.rec, what, match)
}

func attr(s sdktrace.ReadOnlySpan, key string) (attribute.Value, bool) {
	return attrOf(s.Attributes(), key)
}

func mustAttr(t *testing.T, s sdktrace.ReadOnlySpan, key string) attribute.Value {
	t.Helper()
	return testkit.MustAttr(t, s, key)
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

// recoverer answers 500 for a handler that panicked, as a recovering
// middleware outside Trace does.
func recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				http.Error(w, "internal error", http.StatusInternalServerError)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

var (
	eventually = testkit.Eventually
	attrOf     = testkit.AttrOf
)
