package middleware_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"

	"github.com/telltale-go/telltale/internal/testkit"
	"github.com/telltale-go/telltale/sampling"
	"github.com/telltale-go/telltale/transport"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// env is a real Echo server and a real telltale transport, both traced into
// one span recorder.
type env struct {
	rec    *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	prop   propagation.TextMapPropagator
	tr     *transport.Transport
	client *http.Client
	e      *echo.Echo
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
	v := &env{rec: rec, tp: tp, prop: propagation.TraceContext{}}
	t.Cleanup(func() { _ = v.tp.Shutdown(context.Background()) })
	all := append([]transport.Option{
		transport.WithTracerProvider(v.tp),
		transport.WithPropagators(v.prop),
		transport.WithLogger(slog.New(slog.DiscardHandler)),
	}, opts...)
	v.tr = transport.New(nil, all...)
	t.Cleanup(func() { _ = v.tr.Close() })
	v.client = &http.Client{Transport: v.tr}
	v.e = echo.New()
	v.e.HideBanner, v.e.HidePort = true, true
	return v
}

// start serves the Echo instance; call it after the routes are set.
func (v *env) start(t *testing.T) {
	t.Helper()
	v.srv = httptest.NewServer(v.e)
	t.Cleanup(v.srv.Close)
}

// countErrorHandling counts the calls of Echo's error handler, which must
// run once per error.
func (v *env) countErrorHandling() *atomic.Int32 {
	var handled atomic.Int32
	v.e.HTTPErrorHandler = func(err error, c echo.Context) {
		handled.Add(1)
		v.e.DefaultHTTPErrorHandler(err, c)
	}
	return &handled
}

// do sends a request to the Echo server with a plain client and returns the
// status and the body.
func (v *env) do(t *testing.T, method, path string, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, v.srv.URL+path, nil)
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
	return resp.StatusCode, string(b)
}

// serverSpan waits until a server span named name has ended and returns it.
func (v *env) serverSpan(t *testing.T, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	return v.waitSpan(t, func(s sdktrace.ReadOnlySpan) bool {
		return s.Name() == name && s.SpanKind().String() == "server"
	}, "server span "+name)
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

// payloadServer is an upstream that answers 1 KiB.
func payloadServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv, _ := countingUpstream(t, 1<<10)
	return srv
}

var (
	eventually = testkit.Eventually
	attrOf     = testkit.AttrOf
)
