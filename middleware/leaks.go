package middleware

import (
	"errors"
	"runtime/pprof"
	"strconv"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/internal/anomaly"
	"github.com/telltale-go/telltale/transport"
	"github.com/telltale-go/telltale/vocab"
)

// LeaksConfig configures [Leaks].
type LeaksConfig struct {
	// Skipper skips the middleware for a request: no scope, no labels.
	// Defaults to never skipping.
	Skipper func(c echo.Context) bool

	// Goroutines, if set, is told when each request starts and ends, and
	// the handler's goroutine gets runtime/pprof labels naming the request,
	// which the goroutines it starts inherit: that is how the monitor finds
	// the goroutines a request left running.
	Goroutines *GoroutineMonitor

	// ProfileLabels labels the handler's goroutine, and those it starts,
	// with the route and the trace id, which CPU and goroutine profiles
	// show (go tool pprof -tagfocus http.route=/users/:id). Off by default:
	// it costs three allocations per request.
	ProfileLabels bool
}

// Leaks returns a middleware that accounts for the response bodies each
// request leaves open, with the default [LeaksConfig]: no goroutine monitor.
func Leaks() echo.MiddlewareFunc {
	return LeaksWithConfig(LeaksConfig{})
}

// LeaksWithConfig returns a [Leaks] middleware with the given config. It
// panics if the config is invalid; use [LeaksConfig.ToMiddleware] to get the
// error instead.
func LeaksWithConfig(cfg LeaksConfig) echo.MiddlewareFunc {
	return must(cfg.ToMiddleware())
}

// ToMiddleware validates the config and returns the [Leaks] middleware.
//
// The request context gets a [transport.Scope]: every response body a
// telltale [transport.Transport] returns for a request made with that context
// (or one derived from it) is bound to it. When the handler returns, the
// scope ends: each body still open is a leak, reported by the transport on
// its client span, its metric and its log, and repaired — closed, freeing
// its connection — unless the transport is report-only. The middleware puts
// the leaks on the server span too: the attribute telltale.leaks (set only
// when not zero) and one telltale.response.body.leaked event per body, with
// [transport.Leak.Attributes]: the handler's file and line, its stack, the
// upstream and how long the body was open.
//
// With a goroutine monitor, or with ProfileLabels, the handler's goroutine
// gets runtime/pprof labels — the route, and the request's id for the
// monitor or the trace id for profiles — which every goroutine it starts
// inherits; they are removed when the handler returns. Put Leaks after
// [Trace], so that it finds the server span.
func (cfg LeaksConfig) ToMiddleware() (echo.MiddlewareFunc, error) {
	if cfg.Skipper == nil {
		cfg.Skipper = neverSkip
	}
	if cfg.Goroutines != nil && cfg.Goroutines.id == "" {
		return nil, errors.New("middleware: Leaks: Goroutines must come from NewGoroutineMonitor")
	}
	return skippable(cfg.Skipper, cfg.serve), nil
}

func (cfg *LeaksConfig) serve(c echo.Context, next echo.HandlerFunc) error {
	req := c.Request()
	parent := req.Context()
	ctx, scope := transport.WithScope(parent)

	if m := cfg.Goroutines; m != nil || cfg.ProfileLabels {
		route := c.Path()
		sc := trace.SpanContextFromContext(parent)
		var buf [8]string // in order: pprof.Labels sorts its keys, at a cost, unless they are
		args := append(buf[:0], labelRoute, route)
		if m != nil {
			id := m.begin(route, sc, anomaly.ServerFrom(parent))
			defer m.end(id)
			args = append(args, labelMonitor, m.id, labelRequest, strconv.FormatUint(id, 10))
		}
		if cfg.ProfileLabels && sc.IsValid() {
			args = append(args, labelTraceID, sc.TraceID().String())
		}
		labels := pprof.Labels(args...)
		ctx = pprof.WithLabels(ctx, labels)
		pprof.SetGoroutineLabels(ctx)
		// The goroutine goes back to serving the connection: restore
		// whatever labels it had (none, unless the server set some).
		defer pprof.SetGoroutineLabels(parent)
	}
	defer withContext(c, ctx).undo()

	// Scope.End runs even if the handler panics: the bodies are leaked all
	// the same, and a recover further out still answers.
	defer func() {
		leaks := scope.End()
		if len(leaks) == 0 {
			return
		}
		rec := recorderOf(parent)
		rec.anomaly()
		rec.setAttributes(attribute.Int(vocab.AttrLeaks, len(leaks)))
		for _, l := range leaks {
			rec.addEvent(vocab.EventBodyLeaked, l.At, l.Attributes()...)
		}
	}()
	return next(c)
}
