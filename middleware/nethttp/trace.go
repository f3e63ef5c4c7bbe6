package nethttp

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/internal/server"
)

// TraceConfig configures [Trace].
type TraceConfig struct {
	// Skipper skips the middleware for a request: no span is started.
	// Defaults to never skipping.
	Skipper func(r *http.Request) bool

	// TracerProvider provides the tracer of the server spans. The global
	// provider is used when nil. To have the anomalies of unsampled
	// requests exported, it needs package sampling's sampler and ID
	// generator (sampling.NewTracerProvider).
	TracerProvider trace.TracerProvider

	// MeterProvider provides otelhttp's server metrics
	// (http.server.request.duration, ...). The global provider is used when
	// nil.
	MeterProvider metric.MeterProvider

	// Propagators extract the caller's trace context from the request
	// headers. The global propagators are used when nil.
	Propagators propagation.TextMapPropagator

	// ServerName is the logical server name recorded as server.address. The
	// request's Host is used when empty.
	ServerName string

	// Logger receives telltale's warnings: a tracer provider that cannot
	// export the anomalies of unsampled requests, a ReportAnomaly after its
	// request ended. slog.Default() is used when nil.
	Logger *slog.Logger

	// Slow is the server-side slow threshold: a request still running when
	// it passes gets a telltale.request.slow event, stamped then, and is an
	// anomaly — exported even if the head sampler dropped it, in the
	// caller's trace when the caller propagated it. Zero (the default)
	// checks no route but those of SlowRoutes.
	Slow time.Duration

	// SlowRoutes overrides Slow for some routes, keyed by the route as the
	// router gives it: Go's pattern as registered ("GET /users/{id}"), or
	// RouteFunc's answer; zero turns the check off for a route.
	SlowRoutes map[string]time.Duration

	// RouteFunc, if set, gives the route template of a request whose
	// pattern does not say it: a router other than Go's ServeMux, which
	// keeps its route elsewhere. It is called with the request the
	// middleware handed on, after the handler returned (or panicked), as
	// func(r *http.Request) string { return
	// chi.RouteContext(r.Context()).RoutePattern() } for Trace installed
	// with chi's r.Use. It costs a copy of the request, which the core can
	// then name the route on without touching the one the handler saw.
	RouteFunc func(r *http.Request) string
}

// Trace returns a middleware that starts a server span for every request,
// with the default [TraceConfig].
func Trace() func(http.Handler) http.Handler {
	return TraceWithConfig(TraceConfig{})
}

// TraceWithConfig returns a [Trace] middleware with the given config. It
// panics if the config is invalid; use [TraceConfig.ToMiddleware] to get the
// error instead.
func TraceWithConfig(cfg TraceConfig) func(http.Handler) http.Handler {
	return server.Must(cfg.ToMiddleware())
}

// ToMiddleware validates the config and returns the [Trace] middleware.
//
// The span is otelhttp's server span, with its attributes and metrics. It
// starts named by the method alone, "GET", unless the request already
// carries its pattern (Trace installed inside a mux); once the handler
// has returned, the route a mux set on the request below — reported by
// [Deadline] and [Leaks] for the copies they hand on — or RouteFunc's
// answer renames it "GET /users/{id}" and gives it http.route, as it does
// otelhttp's metrics. A request no route matched keeps the method alone,
// so that paths never make span names unbounded.
//
// A 5xx answer marks the span as an error; a 4xx does not. An answer below
// 400 given though a call the request made failed, or after the handler
// reported an anomaly ([ReportAnomaly]), is marked telltale.degraded.
// Every anomaly marks the span telltale.anomaly.
//
// When the head sampler drops a request, the middleware keeps what its span
// would have recorded, as otelhttp recorded it, and exports it with every
// client span of the request if the request turns out anomalous — a 5xx, a
// panic, a deadline answer, a caller that gave up, an overrun, a leaked
// body, a failed or slow call, a slow request, an orphaned goroutine, a
// degraded answer. That needs the tracer provider that package sampling
// builds.
func (cfg TraceConfig) ToMiddleware() (func(http.Handler) http.Handler, error) {
	skip := cfg.Skipper
	if skip == nil {
		skip = neverSkip
	}
	core, err := server.NewTrace(server.TraceConfig{
		TracerProvider: cfg.TracerProvider,
		MeterProvider:  cfg.MeterProvider,
		Propagators:    cfg.Propagators,
		ServerName:     cfg.ServerName,
		Logger:         cfg.Logger,
		Slow:           cfg.Slow,
		SlowRoutes:     cfg.SlowRoutes,
	})
	if err != nil {
		return nil, wrapErr(err)
	}
	routeFunc := cfg.RouteFunc
	// A traced request, bound to otelhttp's handler once, is reused from
	// request to request.
	var pool sync.Pool
	pool.New = func() any {
		t := &traced{routeFunc: routeFunc}
		t.Handle = core.NewHandle(t)
		return t
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if skip(r) {
				next.ServeHTTP(w, r)
				return
			}
			t := pool.Get().(*traced)
			t.next = next
			// Inside a mux, the request carries its route already.
			t.ServeRoute(w, r, r.Pattern)
			t.next = nil
			pool.Put(t)
		})
	}, nil
}

// traced runs the rest of the chain inside otelhttp's handler.
type traced struct {
	server.Handle
	next      http.Handler
	routeFunc func(*http.Request) string
}

// Serve hands r, otelhttp's copy of the request, to the rest of the chain,
// and notes the route learnt there — the pattern a mux set on r, or
// RouteFunc's answer — even when the handler panics. net/http handlers
// have no errors; the status is the one otelhttp's writer saw.
func (t *traced) Serve(w http.ResponseWriter, r *http.Request) (status int, route string, err error) {
	defer func() {
		route = learntRoute(r, t.routeFunc)
		server.NoteRoute(r.Context(), route)
	}()
	t.next.ServeHTTP(w, r)
	return 0, "", nil
}

// ReportAnomaly tells telltale that the request ctx belongs to went wrong
// in a way only the handler knows — a partial answer, a fallback, a
// degraded result: its server span gets a telltale.anomaly event saying
// why (telltale.anomaly.reason), is marked telltale.anomaly, and, if the
// answer still succeeds, telltale.degraded; if the head sampler dropped the
// request, it is exported anyway, with the rest of its trace, within the
// sampling budget. ctx is the request's context, as the handler has it
// (r.Context()) or any context derived from it, on any goroutine of the
// request; outside a request traced by Trace, it does nothing. Called
// after the request ended, it is dropped, and a warning says so once.
func ReportAnomaly(ctx context.Context, why string) {
	server.ReportAnomaly(ctx, why)
}
