package transport_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/telltale-go/telltale/sampling"
	"github.com/telltale-go/telltale/transport"
)

// The benchmarks compare, side by side in one run, a bare transport, plain
// otelhttp and telltale over the same base, for sampled requests (every
// span recorded) and unsampled ones (the head sampler drops them, as it
// does for 90 to 99 % of production requests). Each request carries a
// context deadline and a query string, as a handler behind the Deadline
// middleware sends it, and is sent from as deep a stack as a handler's.
// Metrics go to a no-op meter; spans go to a synchronous processor whose
// exporter discards them (a batching one adds a goroutine whose scheduling
// only blurs the figures on a small machine). otelhttp gets the SDK's
// provider as users build it; telltale the one package sampling builds
// around the same head sampler.
//
//	go test -run '^$' -bench 'RoundTrip' -benchmem -count 10 ./transport > bench.txt
//	benchstat -row /upstream,/sampling -col /transport bench.txt

type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// samplers are the head samplers of the two sampling variants.
var samplers = []struct {
	name    string
	sampler sdktrace.Sampler
}{
	{"sampled", sdktrace.AlwaysSample()},
	{"unsampled", sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0))},
}

type variant struct {
	name string
	rt   http.RoundTripper
}

// variants are the three transports over the same base, with sampler.
func variants(b *testing.B, sampler sdktrace.Sampler, base func() http.RoundTripper) []variant {
	plain := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler), sdktrace.WithSyncer(discardExporter{}))
	telltale := sampling.NewTracerProvider(sampler, sdktrace.WithSyncer(discardExporter{}))
	b.Cleanup(func() {
		_ = plain.Shutdown(context.Background())
		_ = telltale.Shutdown(context.Background())
	})
	mp := noop.NewMeterProvider()
	prop := propagation.TraceContext{}
	tt := transport.New(base(), transport.WithTracerProvider(telltale), transport.WithMeterProvider(mp),
		transport.WithPropagators(prop), transport.WithLogger(discardLogger()))
	b.Cleanup(func() { _ = tt.Close() })
	return []variant{
		{"bare", base()},
		{"otelhttp", otelhttp.NewTransport(base(), otelhttp.WithTracerProvider(plain), otelhttp.WithMeterProvider(mp), otelhttp.WithPropagators(prop))},
		{"telltale", tt},
	}
}

// memoryUpstream answers at once with a 2 KiB body: what the transports
// cost themselves, without network time.
type memoryUpstream struct{ payload []byte }

func (m memoryUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(bytes.NewReader(m.payload)),
		ContentLength: int64(len(m.payload)),
		Request:       r,
	}, nil
}

// upstreams are the memory upstream and a loopback server, each with the
// base transport that reaches it.
func upstreams(b *testing.B) []struct {
	name string
	url  string
	base func() http.RoundTripper
} {
	payload := make([]byte, 2<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(payload) }))
	b.Cleanup(srv.Close)
	loopback := func() http.RoundTripper {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 100
		b.Cleanup(t.CloseIdleConnections)
		return t
	}
	return []struct {
		name string
		url  string
		base func() http.RoundTripper
	}{
		{"memory", "http://memory.test/items?page=2", func() http.RoundTripper { return memoryUpstream{payload} }},
		{"loopback", srv.URL + "/items?page=2", loopback},
	}
}

// roundTrip does what a handler does: a request with the deadline the
// middleware gives it, the body read and closed.
func roundTrip(b *testing.B, c *http.Client, ctx context.Context, url string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
}

// handlerDepth is how deep in its goroutine's stack an Echo handler runs
// behind Recover, Trace, Deadline and Leaks (runtime.Callers, counted from
// the handler: 16 frames, net/http's and Echo's included). The cost of
// capturing the stack of a call grows with its depth.
const handlerDepth = 16

// atDepth calls f at depth frames deep in its goroutine's stack.
//
//go:noinline
func atDepth(depth int, f func()) {
	if runtime.Callers(1, make([]uintptr, depth)) < depth {
		atDepth(depth, f)
		return
	}
	f()
}

// BenchmarkRoundTrip is one GET of a 2 KiB body.
func BenchmarkRoundTrip(b *testing.B) { benchRoundTrips(b, false, false) }

// BenchmarkRoundTripParallel sends the same requests, over loopback, from
// 4×GOMAXPROCS goroutines: tracking must not serialise them on a lock.
func BenchmarkRoundTripParallel(b *testing.B) { benchRoundTrips(b, true, true) }

func benchRoundTrips(b *testing.B, parallel, loopbackOnly bool) {
	for _, up := range upstreams(b) {
		if loopbackOnly && up.name != "loopback" {
			continue
		}
		b.Run("upstream="+up.name, func(b *testing.B) {
			for _, s := range samplers {
				b.Run("sampling="+s.name, func(b *testing.B) {
					for _, v := range variants(b, s.sampler, up.base) {
						b.Run("transport="+v.name, func(b *testing.B) {
							c := &http.Client{Transport: v.rt}
							ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
							defer cancel()
							b.ReportAllocs()
							if !parallel {
								atDepth(handlerDepth, func() {
									for b.Loop() {
										roundTrip(b, c, ctx, up.url)
									}
								})
								return
							}
							b.SetParallelism(4)
							b.RunParallel(func(pb *testing.PB) {
								atDepth(handlerDepth, func() {
									for pb.Next() {
										roundTrip(b, c, ctx, up.url)
									}
								})
							})
						})
					}
				})
			}
		})
	}
}

// BenchmarkHeldOpenBody measures the heap held per response body left open
// (bytes/open-body), connection buffers of client and server included: the
// bare column is net/http's share, otelhttp adds its open span, telltale its
// tracking. TestTrackingFootprint gives telltale's own part exactly.
func BenchmarkHeldOpenBody(b *testing.B) {
	up := upstreams(b)[1]
	const held = 200
	for _, v := range variants(b, sdktrace.AlwaysSample(), up.base) {
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
					req, _ := http.NewRequestWithContext(ctx, http.MethodGet, up.url, nil)
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
