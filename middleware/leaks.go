package middleware

import (
	"github.com/labstack/echo/v4"

	"github.com/telltale-go/telltale/internal/server"
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
	return server.Must(cfg.ToMiddleware())
}

// ToMiddleware validates the config and returns the [Leaks] middleware.
//
// The request context gets a [transport.Scope]: every response body a
// telltale [transport.Transport] returns for a request made with that context
// (or one derived from it) is bound to it. When the handler returns, the
// scope ends: each body still open is a leak, reported by the transport on
// its client span — with the whole evidence: the call site, its stack, the
// upstream, how long the body was open — in its metric and its log, and
// repaired (closed, freeing its connection) unless the transport is
// report-only. The server span gets the count (telltale.leaks, set only
// when not zero) and one telltale.response.body.leaked event per body
// pointing to it: the reason and the handler's function, file and line.
//
// With a goroutine monitor, or with ProfileLabels, the handler's goroutine
// gets runtime/pprof labels — the route, and the request's id for the
// monitor or the trace id for profiles — which every goroutine it starts
// inherits; they are removed when the handler returns. Put Leaks after
// [Trace], so that it finds the server span.
//
// [transport.Scope]: https://pkg.go.dev/github.com/telltale-go/telltale/transport#Scope
// [transport.Transport]: https://pkg.go.dev/github.com/telltale-go/telltale/transport#Transport
func (cfg LeaksConfig) ToMiddleware() (echo.MiddlewareFunc, error) {
	skip := cfg.Skipper
	if skip == nil {
		skip = neverSkip
	}
	core, err := server.NewLeaks(server.LeaksConfig{Goroutines: cfg.Goroutines, ProfileLabels: cfg.ProfileLabels})
	if err != nil {
		return nil, wrapErr(err)
	}
	return skippable(skip, func(c echo.Context, next echo.HandlerFunc) error {
		req := c.Request()
		handOn, run := core.Begin(req, c.Path())
		c.SetRequest(handOn)
		// Run even if the handler panics: the bodies are leaked all the
		// same, and a recover further out still answers. Nothing is
		// written to the request handed on: goroutines the handler
		// started may still read it.
		defer func() {
			run.End("")
			restoreRequest(c, req)
		}()
		return next(c)
	}), nil
}
