package transport_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/telltale-go/telltale/transport"
	"github.com/telltale-go/telltale/vocab"
)

// clientErrorTypes returns the error.type values of otelhttp's client
// duration metric.
func clientErrorTypes(t *testing.T, reader *sdkmetric.ManualReader) []string {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "http.client.request.duration" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Histogram[float64]).DataPoints {
				if v, ok := dp.Attributes.Value(attribute.Key("error.type")); ok {
					types = append(types, v.AsString())
				}
			}
		}
	}
	return types
}

// otelhttp's client metrics read as they do behind plain otelhttp: a
// failed call's error.type is the Go type of net/http's error, never a type
// of telltale's; the span carries telltale's kind.
func TestErrorTypeMetricReadsAsPlainOtelhttp(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	refused := "http://" + ln.Addr().String()
	_ = ln.Close()
	blackHole := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer blackHole.Close()
	call := func(c *http.Client, url string) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if _, err := c.Do(req); err == nil {
			t.Fatal("no error")
		}
	}
	run := func(wrap func(base http.RoundTripper, tp *sdktrace.TracerProvider, mp *sdkmetric.MeterProvider) http.RoundTripper) ([]string, []string) {
		reader, rec := sdkmetric.NewManualReader(), tracetest.NewSpanRecorder()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		defer mp.Shutdown(context.Background())
		defer tp.Shutdown(context.Background())
		base := http.DefaultTransport.(*http.Transport).Clone()
		defer base.CloseIdleConnections()
		c := &http.Client{Transport: wrap(base, tp, mp)}
		call(c, refused)
		call(c, blackHole.URL)
		var spanTypes []string
		for _, s := range rec.Ended() {
			spanTypes = append(spanTypes, errorType(s))
		}
		return clientErrorTypes(t, reader), spanTypes
	}
	plainMetric, _ := run(func(base http.RoundTripper, tp *sdktrace.TracerProvider, mp *sdkmetric.MeterProvider) http.RoundTripper {
		return otelhttp.NewTransport(base, otelhttp.WithTracerProvider(tp), otelhttp.WithMeterProvider(mp))
	})
	ttMetric, ttSpans := run(func(base http.RoundTripper, tp *sdktrace.TracerProvider, mp *sdkmetric.MeterProvider) http.RoundTripper {
		tr := transport.New(base, transport.WithTracerProvider(tp), transport.WithMeterProvider(mp), transport.WithLogger(discardLogger()))
		t.Cleanup(func() { _ = tr.Close() })
		return tr
	})
	slices.Sort(plainMetric)
	slices.Sort(ttMetric)
	if len(plainMetric) != 2 || !slices.Equal(ttMetric, plainMetric) {
		t.Errorf("metric error.type %v behind telltale, %v behind plain otelhttp", ttMetric, plainMetric)
	}
	want := map[string]bool{vocab.ErrorConnectionRefused: true, vocab.ErrorDeadlineExceeded: true}
	for _, typ := range ttSpans {
		if !want[typ] {
			t.Errorf("span error.type %q, want one of telltale's kinds %v", typ, want)
		}
	}
}
