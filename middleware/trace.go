package middleware

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/internal/server"
)

// TraceConfig configures [Trace].
type TraceConfig struct {
	// Skipper skips the middleware for a request: no span is started.
	// Defaults to never skipping. Echo's middleware.Skipper values fit.
	Skipper func(c echo.Context) bool

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

	// SlowRoutes overrides Slow for some routes, keyed by Echo route
	// template (c.Path(), "/users/:id"); zero turns the check off for a
	// route.
	SlowRoutes map[string]time.Duration
}

// Trace returns a middleware that starts a server span for every request,
// with the default [TraceConfig].
func Trace() echo.MiddlewareFunc {
	return TraceWithConfig(TraceConfig{})
}

// TraceWithConfig returns a [Trace] middleware with the given config. It
// panics if the config is invalid; use [TraceConfig.ToMiddleware] to get the
// error instead.
func TraceWithConfig(cfg TraceConfig) echo.MiddlewareFunc {
	return server.Must(cfg.ToMiddleware())
}

// ToMiddleware validates the config and returns the [Trace] middleware.
//
// The span is otelhttp's server span, with its attributes and metrics; Echo's
// route template is given to otelhttp as the request's pattern, so the span
// is named "GET /users/:id" and carries http.route, as do the metrics. Unlike
// an otelhttp handler wrapped around the whole Echo instance, the middleware
// sees the error the handler returned: it hands it to Echo's HTTPErrorHandler
// (c.Error) while the span is still open, so that the span records the status
// the client really gets, and then returns nil, so that the error is handled
// exactly once. A 5xx error is recorded on the span as error.type and an
// exception event whose message is a sentence ("request deadline of 1s
// exceeded: Get ...: context deadline exceeded"); 4xx errors are the
// client's, not the server's, and are not. Middleware that must see the
// handler's error (a logger) therefore goes inside Trace, and Trace should
// come first, after only Echo's Recover.
//
// An answer below 400 given though a call the request made failed, or after
// the handler reported an anomaly ([ReportAnomaly]), is marked
// telltale.degraded. Every anomaly marks the span telltale.anomaly.
//
// When the head sampler drops a request, the middleware keeps what its span
// would have recorded, as otelhttp recorded it, and exports it with every
// client span of the request if the request turns out anomalous — a 5xx, a
// panic, a deadline answer, a caller that gave up, an overrun, a leaked
// body, a failed or slow call, a slow request, an orphaned goroutine, a
// degraded answer — with the ids, times and attributes they would have
// had. That needs the tracer provider that package sampling builds.
func (cfg TraceConfig) ToMiddleware() (echo.MiddlewareFunc, error) {
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
		Errors:         decodeError,
	})
	if err != nil {
		return nil, wrapErr(err)
	}
	// A traced request, bound to otelhttp's handler once, is reused from
	// request to request.
	var pool sync.Pool
	pool.New = func() any {
		t := &traced{}
		t.Handle = core.NewHandle(t)
		return t
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if skip(c) {
				return next(c)
			}
			req := c.Request()
			res := c.Response()
			w := res.Writer
			defer func() {
				res.Writer = w
				c.SetRequest(req)
			}()
			t := pool.Get().(*traced)
			t.c, t.next = c, next
			t.ServeRoute(w, req, c.Path())
			t.c, t.next = nil, nil
			pool.Put(t)
			return nil
		}
	}, nil
}

// traced runs the rest of the Echo chain inside otelhttp's handler.
type traced struct {
	server.Handle
	c    echo.Context
	next echo.HandlerFunc
}

func (t *traced) Serve(w http.ResponseWriter, r *http.Request) (int, string, error) {
	c := t.c
	// otelhttp's writer counts the status and the bytes written, and the
	// request carries the span.
	c.Response().Writer = w
	c.SetRequest(r)
	defer func() { server.KeepForm(c.Request(), r) }() // a panicking handler's form too
	err := t.next(c)
	if err != nil {
		// Echo's error handler answers with the request as Trace got it:
		// the contexts Deadline and Leaks made are over.
		restoreRequest(c, r)
		c.Error(err)
	}
	return c.Response().Status, "", err
}

// ReportAnomaly tells telltale that the request ctx belongs to went wrong
// in a way only the handler knows — a partial answer, a fallback, a
// degraded result: its server span gets a telltale.anomaly event saying
// why (telltale.anomaly.reason), is marked telltale.anomaly, and, if the
// answer still succeeds, telltale.degraded; if the head sampler dropped the
// request, it is exported anyway, with the rest of its trace, within the
// sampling budget. ctx is the request's context, as the handler has it
// (c.Request().Context()) or any context derived from it, on any goroutine
// of the request; outside a request traced by Trace, it does nothing.
// Called after the request ended, it is dropped, and a warning says so
// once.
func ReportAnomaly(ctx context.Context, why string) {
	server.ReportAnomaly(ctx, why)
}
