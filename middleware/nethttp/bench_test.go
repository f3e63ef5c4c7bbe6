package nethttp_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/telltale-go/telltale/internal/testkit"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/telltale-go/telltale/middleware/nethttp"
	"github.com/telltale-go/telltale/sampling"
)

type (
	discardExporter = testkit.DiscardExporter
	discardWriter   = testkit.DiscardWriter
)

// BenchmarkServer is middleware's BenchmarkServer on plain net/http: a
// bare ServeMux (bare), the mux wrapped in otelhttp.NewHandler (otelhttp),
// telltale's Trace alone (trace), Deadline alone (deadline) and the full
// stack around the mux (telltale: Trace, Deadline, Leaks with a goroutine
// monitor), sampled and unsampled.
//
//	go test -run '^$' -bench BenchmarkServer -benchmem -count 10 ./middleware/nethttp > bench.txt
//	benchstat -row /sampling -col /stack bench.txt
func BenchmarkServer(b *testing.B) {
	for _, smp := range []struct {
		name    string
		sampler sdktrace.Sampler
	}{
		{"sampled", sdktrace.AlwaysSample()},
		{"unsampled", sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0))},
	} {
		b.Run("sampling="+smp.name, func(b *testing.B) { benchServer(b, smp.sampler) })
	}
}

func benchServer(b *testing.B, sampler sdktrace.Sampler) {
	plain := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler), sdktrace.WithSyncer(discardExporter{}))
	tp := sampling.NewTracerProvider(sampler, sdktrace.WithSyncer(discardExporter{}))
	b.Cleanup(func() {
		_ = plain.Shutdown(context.Background())
		_ = tp.Shutdown(context.Background())
	})
	mp := noop.NewMeterProvider()
	prop := propagation.TraceContext{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(r.PathValue("id"))) })
	mon := nethttp.NewGoroutineMonitor(nethttp.GoroutineMonitorConfig{TracerProvider: tp})
	trace := nethttp.TraceWithConfig(nethttp.TraceConfig{TracerProvider: tp, MeterProvider: mp, Propagators: prop})
	deadline := nethttp.Deadline(2 * time.Second)
	leaks := nethttp.LeaksWithConfig(nethttp.LeaksConfig{Goroutines: mon})
	variants := []struct {
		name string
		h    http.Handler
	}{
		{"bare", mux},
		{"otelhttp", otelhttp.NewHandler(mux, "server",
			otelhttp.WithTracerProvider(plain), otelhttp.WithMeterProvider(mp), otelhttp.WithPropagators(prop))},
		{"trace", trace(mux)},
		{"deadline", deadline(mux)},
		{"telltale", trace(deadline(leaks(mux)))},
	}
	for _, v := range variants {
		b.Run("stack="+v.name, func(b *testing.B) {
			req, err := http.NewRequest(http.MethodGet, "http://api.example/users/42", nil)
			if err != nil {
				b.Fatal(err)
			}
			req.RemoteAddr = "192.0.2.1:52000"
			req.Header.Set("User-Agent", "bench")
			w := &http1Writer{discardWriter{H: make(http.Header)}}
			b.ReportAllocs()
			for b.Loop() {
				v.h.ServeHTTP(w, req)
			}
			if w.Status != http.StatusOK && w.Status != 0 {
				b.Fatalf("status %d", w.Status)
			}
		})
	}
}

// http1Writer is a discarding writer with the optional interfaces of
// net/http's HTTP/1.1 writer, as a handler behind a real server finds them
// (TestDeadlineKeepsExactlyTheWritersInterfaces lists them): what otelhttp
// and Deadline wrap in production.
type http1Writer struct{ discardWriter }

func (w *http1Writer) Flush()                   {}
func (w *http1Writer) FlushError() error        { return nil }
func (w *http1Writer) CloseNotify() <-chan bool { return nil }
func (w *http1Writer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return nil, nil, http.ErrNotSupported
}
func (w *http1Writer) ReadFrom(r io.Reader) (int64, error) { return io.Copy(io.Discard, r) }
func (w *http1Writer) SetReadDeadline(time.Time) error     { return nil }
func (w *http1Writer) SetWriteDeadline(time.Time) error    { return nil }
func (w *http1Writer) EnableFullDuplex() error             { return nil }
func (w *http1Writer) WriteString(s string) (int, error)   { return len(s), nil }
