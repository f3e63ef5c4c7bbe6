package nethttp

import (
	"net/http"

	"github.com/telltale-go/telltale/internal/server"
)

// LeaksConfig configures [Leaks].
type LeaksConfig struct {
	// Skipper skips the middleware for a request: no scope, no labels.
	// Defaults to never skipping.
	Skipper func(r *http.Request) bool

	// Goroutines, if set, is told when each request starts and ends, and
	// the handler's goroutine gets runtime/pprof labels naming the request,
	// which the goroutines it starts inherit: that is how the monitor finds
	// the goroutines a request left running.
	Goroutines *GoroutineMonitor

	// ProfileLabels labels the handler's goroutine, and those it starts,
	// with the route and the trace id, which CPU and goroutine profiles
	// show (go tool pprof -tagfocus http.route=/users/{id}). The route is
	// known to the label only when Leaks is installed inside the mux. Off
	// by default: it costs three allocations per request.
	ProfileLabels bool
}

// Leaks returns a middleware that accounts for the response bodies each
// request leaves open, with the default [LeaksConfig]: no goroutine monitor.
func Leaks() func(http.Handler) http.Handler {
	return LeaksWithConfig(LeaksConfig{})
}

// LeaksWithConfig returns a [Leaks] middleware with the given config. It
// panics if the config is invalid; use [LeaksConfig.ToMiddleware] to get the
// error instead.
func LeaksWithConfig(cfg LeaksConfig) func(http.Handler) http.Handler {
	return server.Must(cfg.ToMiddleware())
}

// ToMiddleware validates the config and returns the [Leaks] middleware.
//
// The request context gets a [transport.Scope]: every response body a
// telltale [transport.Transport] returns for a request made with that context
// (or one derived from it) is bound to it. When the handler returns, or
// panics, the scope ends: each body still open is a leak, reported by the
// transport on its client span — with the whole evidence: the call site,
// its stack, the upstream, how long the body was open — in its metric and
// its log, and repaired (closed, freeing its connection) unless the
// transport is report-only. The server span gets the count (telltale.leaks,
// set only when not zero) and one telltale.response.body.leaked event per
// body pointing to it: the reason and the handler's function, file and
// line.
//
// With a goroutine monitor, or with ProfileLabels, the handler's goroutine
// gets runtime/pprof labels — the route, and the request's id for the
// monitor or the trace id for profiles — which every goroutine it starts
// inherits; they are removed when the handler returns. The monitor learns
// the route once the handler has returned, from the pattern the mux set.
// Put Leaks inside [Trace], so that it finds the server span.
//
// [transport.Scope]: https://pkg.go.dev/github.com/telltale-go/telltale/transport#Scope
// [transport.Transport]: https://pkg.go.dev/github.com/telltale-go/telltale/transport#Transport
func (cfg LeaksConfig) ToMiddleware() (func(http.Handler) http.Handler, error) {
	skip := cfg.Skipper
	if skip == nil {
		skip = neverSkip
	}
	core, err := server.NewLeaks(server.LeaksConfig{Goroutines: cfg.Goroutines, ProfileLabels: cfg.ProfileLabels})
	if err != nil {
		return nil, wrapErr(err)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if skip(r) {
				next.ServeHTTP(w, r)
				return
			}
			ctx := r.Context()
			handOn, run := core.Begin(r, r.Pattern) // the pattern is known when Leaks is inside the mux
			// Even if the handler panics: the bodies are leaked all the
			// same, the goroutine must get its labels back, and a recover
			// further out still answers. Nothing is written to the request
			// handed on: goroutines the handler started may still read it.
			defer func() {
				route := handOn.Pattern
				server.NoteRoute(ctx, route)
				run.End(route)
				server.KeepForm(handOn, r)
			}()
			next.ServeHTTP(w, handOn)
		})
	}, nil
}
