package transport_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"

	"github.com/telltale-go/telltale/internal/testkit"
	"github.com/telltale-go/telltale/transport"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// env is a transport wired to a span recorder and a manual metric reader.
type env struct {
	rec    *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
	tr     *transport.Transport
	client *http.Client
}

func newEnv(t *testing.T, base http.RoundTripper, opts ...transport.Option) *env {
	t.Helper()
	return newEnvWith(t, base, nil, opts...)
}

// newEnvWith is newEnv with more tracer provider options (a sampler).
func newEnvWith(t *testing.T, base http.RoundTripper, tpOpts []sdktrace.TracerProviderOption, opts ...transport.Option) *env {
	t.Helper()
	e := &env{rec: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	tp := sdktrace.NewTracerProvider(append([]sdktrace.TracerProviderOption{sdktrace.WithSpanProcessor(e.rec)}, tpOpts...)...)
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(e.reader))
	t.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	all := append([]transport.Option{
		transport.WithTracerProvider(tp),
		transport.WithMeterProvider(mp),
		transport.WithLogger(discardLogger()),
	}, opts...)
	e.tr = transport.New(base, all...)
	e.client = e.tr.Client()
	t.Cleanup(func() { _ = e.tr.Close() })
	return e
}

// waitEnded waits until n spans have ended, and returns them all.
func (e *env) waitEnded(t *testing.T, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	eventually(t, fmt.Sprintf("%d ended spans", n), func() bool { return len(e.rec.Ended()) >= n })
	return e.rec.Ended()
}

// sum returns the value of an int64 sum metric, filtered by an attribute if
// attr is valid.
func (e *env) sum(t *testing.T, name string, attr attribute.KeyValue) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := e.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			s, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				t.Fatalf("%s is %T, want Sum[int64]", name, m.Data)
			}
			for _, dp := range s.DataPoints {
				if attr.Valid() {
					if v, ok := dp.Attributes.Value(attr.Key); !ok || v != attr.Value {
						continue
					}
				}
				total += dp.Value
			}
		}
	}
	return total
}

func spanAttr(t *testing.T, s sdktrace.ReadOnlySpan, key string) attribute.Value {
	t.Helper()
	v, ok := attrOf(s.Attributes(), key)
	if !ok {
		t.Fatalf("span %q has no attribute %s; has %v", s.Name(), key, s.Attributes())
	}
	return v
}

func event(t *testing.T, s sdktrace.ReadOnlySpan, name string) sdktrace.Event {
	t.Helper()
	for _, ev := range s.Events() {
		if ev.Name == name {
			return ev
		}
	}
	t.Fatalf("span %q has no %s event; events: %v", s.Name(), name, s.Events())
	return sdktrace.Event{}
}

// here returns the file and line of its caller.
func here() (string, int) {
	_, file, line, _ := runtime.Caller(1)
	return file, line
}

// payloadServer serves size bytes on every path.
func payloadServer(t *testing.T, size int) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(payloadHandler(size))
	t.Cleanup(srv.Close)
	return srv
}

func payloadHandler(size int) http.HandlerFunc {
	payload := make([]byte, size)
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(payload)
	}
}

// tlsServer starts an httptest TLS server, speaking HTTP/2 when h2 is set.
func tlsServer(t *testing.T, h2 bool, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = h2
	// net/http may dial spare connections for concurrent h2 requests and
	// drop them before the handshake: keep the test log readable.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// hardenedFor is the hardened transport New(nil) would build, trusting srv.
func hardenedFor(srv *httptest.Server) *http.Transport {
	base := transport.NewHardenedTransport()
	base.TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	return base
}

// protos are the protocols the protocol-sensitive tests run over.
var protos = []struct {
	name string
	h2   bool
}{{"http1.1+tls", false}, {"h2", true}}

func get(t *testing.T, c *http.Client, ctx context.Context, url string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp
}

func drainClose(resp *http.Response) {
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
}

// upgradeServer answers every request with 101 and then runs fn on the
// hijacked connection.
func upgradeServer(t *testing.T, fn func(rw io.ReadWriter, closeWrite func())) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		_ = brw.Flush()
		fn(struct {
			io.Reader
			io.Writer
		}{brw, conn}, func() { _ = conn.(interface{ CloseWrite() error }).CloseWrite() })
	}))
	t.Cleanup(srv.Close)
	return srv
}

func upgrade(t *testing.T, c *http.Client, url string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	return resp
}

// echoLine reads a line from the upgraded connection and writes it back.
func echoLine(rw io.ReadWriter, _ func()) {
	line, _ := bufio.NewReader(rw).ReadString('\n')
	_, _ = io.WriteString(rw, "echo: "+line)
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// keepingExporter keeps what it exported after shutdown, unlike
// tracetest.InMemoryExporter.
type keepingExporter struct {
	mu    sync.Mutex
	spans []sdktrace.ReadOnlySpan
}

func (k *keepingExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.spans = append(k.spans, spans...)
	return nil
}

func (k *keepingExporter) Shutdown(context.Context) error { return nil }

func (k *keepingExporter) exported() []sdktrace.ReadOnlySpan {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]sdktrace.ReadOnlySpan(nil), k.spans...)
}

// errorType is the error.type of s, or "".
func errorType(s sdktrace.ReadOnlySpan) string {
	v, _ := attrOf(s.Attributes(), "error.type")
	return v.AsString()
}

var (
	eventually = testkit.Eventually
	attrOf     = testkit.AttrOf
	slogTo     = testkit.Logger
)

type syncBuffer = testkit.SyncBuffer
