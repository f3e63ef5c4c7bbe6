package transport_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/telltale-go/telltale/transport"
)

// dropProcessor is a span processor that receives every span and keeps
// none: the benchmarks measure instrumentation, not an exporter.
type dropProcessor struct{}

func (dropProcessor) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (dropProcessor) OnEnd(sdktrace.ReadOnlySpan)                     {}
func (dropProcessor) Shutdown(context.Context) error                  { return nil }
func (dropProcessor) ForceFlush(context.Context) error                { return nil }

// variants are the three transports compared side by side: the same
// loopback server, the same base transport settings, the same tracer and
// meter providers.
func variants(b *testing.B) []struct {
	name string
	rt   http.RoundTripper
} {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(dropProcessor{}), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	prop := propagation.TraceContext{}
	b.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	base := func() *http.Transport {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 100
		b.Cleanup(t.CloseIdleConnections)
		return t
	}
	tt := transport.New(base(), transport.WithTracerProvider(tp), transport.WithMeterProvider(mp),
		transport.WithPropagators(prop), transport.WithLogger(discardLogger()))
	b.Cleanup(func() { _ = tt.Close() })
	return []struct {
		name string
		rt   http.RoundTripper
	}{
		{"bare", base()},
		{"otelhttp", otelhttp.NewTransport(base(), otelhttp.WithTracerProvider(tp), otelhttp.WithMeterProvider(mp), otelhttp.WithPropagators(prop))},
		{"telltale", tt},
	}
}

func benchServer(b *testing.B) *httptest.Server {
	payload := make([]byte, 2<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(payload)
	}))
	b.Cleanup(srv.Close)
	return srv
}

// roundTrip does what a handler does: a request with the deadline the
// telltale middleware gives it, the body read and closed.
func roundTrip(b *testing.B, c *http.Client, ctx context.Context, url string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
}

// BenchmarkRoundTrip compares one GET of a 2 KiB body on loopback.
// Summarise with: benchstat -col /transport bench.txt
func BenchmarkRoundTrip(b *testing.B) { benchRoundTrips(b, false) }

// BenchmarkRoundTripParallel runs the same requests from GOMAXPROCS*4
// goroutines: tracking must not serialise them on a lock.
func BenchmarkRoundTripParallel(b *testing.B) { benchRoundTrips(b, true) }

func benchRoundTrips(b *testing.B, parallel bool) {
	srv := benchServer(b)
	for _, v := range variants(b) {
		b.Run("transport="+v.name, func(b *testing.B) {
			c := &http.Client{Transport: v.rt}
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			defer cancel()
			b.ReportAllocs()
			if !parallel {
				for b.Loop() {
					roundTrip(b, c, ctx, srv.URL)
				}
				return
			}
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					roundTrip(b, c, ctx, srv.URL)
				}
			})
		})
	}
}

// BenchmarkHeldOpenBody measures the heap held per response body left open
// (bytes/open-body), connection buffers of client and server included: the
// bare column is net/http's share, otelhttp adds its open span, telltale its
// tracking. TestTrackingFootprint gives telltale's part exactly.
func BenchmarkHeldOpenBody(b *testing.B) {
	srv := benchServer(b)
	const held = 200
	for _, v := range variants(b) {
		b.Run("transport="+v.name, func(b *testing.B) {
			c := &http.Client{Transport: v.rt}
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			defer cancel()
			var perBody float64
			for b.Loop() {
				bodies := make([]io.Closer, 0, held)
				var before, after runtime.MemStats
				c.CloseIdleConnections() // every variant dials its 200 connections afresh
				// Three collections empty net/http's sync.Pools of buffers
				// left by the previous variant, which would otherwise make
				// the later variants look cheaper.
				runtime.GC()
				runtime.GC()
				runtime.GC()
				runtime.ReadMemStats(&before)
				for range held {
					req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
					resp, err := c.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					bodies = append(bodies, resp.Body)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				perBody = float64(after.HeapAlloc-before.HeapAlloc) / held
				for _, body := range bodies {
					_ = body.Close()
				}
			}
			b.ReportMetric(perBody, "bytes/open-body")
		})
	}
}
