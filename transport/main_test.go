package transport_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"

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
	e := &env{rec: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(e.rec))
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
	e.client = &http.Client{Transport: e.tr}
	t.Cleanup(func() { _ = e.tr.Close() })
	return e
}

// ended returns the ended client spans.
func (e *env) ended() []sdktrace.ReadOnlySpan { return e.rec.Ended() }

// waitEnded waits until n spans have ended.
func (e *env) waitEnded(t *testing.T, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if s := e.ended(); len(s) >= n {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 5s for %d ended spans, have %d", n, len(e.ended()))
		}
		time.Sleep(5 * time.Millisecond)
	}
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

func attrOf(attrs []attribute.KeyValue, key string) (attribute.Value, bool) {
	for _, a := range attrs {
		if string(a.Key) == key {
			return a.Value, true
		}
	}
	return attribute.Value{}, false
}

func spanAttr(t *testing.T, s sdktrace.ReadOnlySpan, key string) attribute.Value {
	t.Helper()
	v, ok := attrOf(s.Attributes(), key)
	if !ok {
		t.Fatalf("span %q has no attribute %s; has %v", s.Name(), key, s.Attributes())
	}
	return v
}

// payloadServer serves size bytes on every path.
func payloadServer(t *testing.T, size int) *httptest.Server {
	t.Helper()
	payload := make([]byte, size)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(payload)
	}))
	t.Cleanup(srv.Close)
	return srv
}

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
