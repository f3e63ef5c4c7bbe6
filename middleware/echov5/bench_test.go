package echov5_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/telltale-go/telltale/internal/testkit"

	"github.com/labstack/echo/v5"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	ttmw "github.com/telltale-go/telltale/middleware/echov5"
	"github.com/telltale-go/telltale/sampling"
)

type (
	discardExporter = testkit.DiscardExporter
	discardWriter   = testkit.DiscardWriter
)

// BenchmarkServer is middleware's BenchmarkServer on Echo v5: bare Echo v5
// (bare), Echo v5 wrapped in plain otelhttp (otelhttp), telltale's Trace
// alone (trace), Deadline alone (deadline) and the full stack (telltale:
// Trace, Deadline, Leaks with a goroutine monitor), sampled and unsampled.
//
//	go test -run '^$' -bench BenchmarkServer -benchmem -count 10 ./middleware/echov5 > bench.txt
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
	handler := func(c *echo.Context) error { return c.String(http.StatusOK, c.Param("id")) }
	newEcho := func(mw ...echo.MiddlewareFunc) *echo.Echo {
		e := echo.New()
		e.Use(mw...)
		e.GET("/users/:id", handler)
		return e
	}
	mon := ttmw.NewGoroutineMonitor(ttmw.GoroutineMonitorConfig{TracerProvider: tp})
	trace := func() echo.MiddlewareFunc {
		return ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: tp, MeterProvider: mp, Propagators: prop})
	}
	variants := []struct {
		name string
		h    http.Handler
	}{
		{"bare", newEcho()},
		{"otelhttp", otelhttp.NewHandler(newEcho(), "server",
			otelhttp.WithTracerProvider(plain), otelhttp.WithMeterProvider(mp), otelhttp.WithPropagators(prop))},
		{"trace", newEcho(trace())},
		{"deadline", newEcho(ttmw.Deadline(2 * time.Second))},
		{"telltale", newEcho(trace(), ttmw.Deadline(2*time.Second), ttmw.LeaksWithConfig(ttmw.LeaksConfig{Goroutines: mon}))},
	}
	for _, v := range variants {
		b.Run("stack="+v.name, func(b *testing.B) {
			req, err := http.NewRequest(http.MethodGet, "http://api.example/users/42", nil)
			if err != nil {
				b.Fatal(err)
			}
			req.RemoteAddr = "192.0.2.1:52000"
			req.Header.Set("User-Agent", "bench")
			w := &discardWriter{H: make(http.Header)}
			b.ReportAllocs()
			for b.Loop() {
				v.h.ServeHTTP(w, req)
			}
			if w.Status != http.StatusOK {
				b.Fatalf("status %d", w.Status)
			}
		})
	}
}
