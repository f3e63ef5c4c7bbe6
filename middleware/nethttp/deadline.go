package nethttp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/telltale-go/telltale/internal/server"
)

// StatusClientClosedRequest is the status nginx made up for a request whose
// client went away before the answer: no client reads it, but logs and
// server spans record it, and it is a 4xx, so it is not counted as a server
// error.
const StatusClientClosedRequest = server.StatusClientClosedRequest

// DefaultOverrunGrace is the default of DeadlineConfig.OverrunGrace.
const DefaultOverrunGrace = server.DefaultOverrunGrace

// DeadlineConfig configures [Deadline].
type DeadlineConfig struct {
	// Skipper skips the middleware for a request: its context is left as it
	// is. Defaults to never skipping. Use it for the routes that serve a
	// stream (server-sent events, a proxied WebSocket).
	Skipper func(r *http.Request) bool

	// Timeout is the deadline of a request, from the moment the middleware
	// runs, when nothing more specific applies. Required, positive.
	Timeout time.Duration

	// Routes overrides Timeout for some routes, keyed by the route as the
	// router gives it: Go's pattern as registered ("GET /users/{id}"), or
	// RouteFunc's answer. Values must be positive. A route's timeout
	// applies when the route is known before the handler runs: from
	// RouteFunc, or from the request's pattern when Deadline is installed
	// inside the mux (mux.Handle(pattern, nethttp.Deadline(d)(h))).
	Routes map[string]time.Duration

	// RouteFunc, if set, gives the route of a request before the handler
	// runs, for Routes; in front of Go's ServeMux, it asks the mux:
	//
	//	func(r *http.Request) string { _, p := mux.Handler(r); return p }
	//
	// When it cannot say yet (chi's RouteContext, filled in only as it
	// routes), it is asked again once the handler has returned, for the
	// server span.
	RouteFunc func(r *http.Request) string

	// TimeoutFunc, if set, decides the timeout of a request; it wins over
	// Routes and Timeout when it returns a positive duration, and defers to
	// them otherwise. It runs on every request: keep it cheap.
	TimeoutFunc func(r *http.Request) time.Duration

	// TrustHeader makes the middleware take the caller's budget from the
	// Connect protocol's Connect-Timeout-Ms header — sent by Connect
	// clients and by a telltale Transport built with
	// WithDeadlinePropagation — as the request's timeout, clamped to
	// MaxTimeout, so that the server stops working when its caller stops
	// waiting. Malformed values (anything but 1 to 10 ASCII digits: signs,
	// spaces, units) are ignored and recorded on the span as a
	// telltale.deadline.header_invalid event. Only enable it behind callers
	// you trust: the header can ask for any deadline up to MaxTimeout. A
	// caller that goes away at or after the deadline it propagated gave up
	// waiting: that is an anomaly of this request, exported in the
	// caller's trace; one that goes away before it canceled on purpose
	// (a hedged request, an errgroup's first error), which is counted
	// (telltale.server.request.canceled), not reported.
	TrustHeader bool

	// TrustEnvoyHeader makes the middleware take the route timeout Envoy
	// (or Istio) announces in X-Envoy-Expected-Rq-Timeout-Ms as an upper
	// bound: the request's deadline is never later than Envoy's, which
	// answers the caller with a 504 of its own at that time anyway. With
	// both headers, the smallest timeout wins. Malformed values are ignored
	// and recorded, as for TrustHeader.
	TrustEnvoyHeader bool

	// MaxTimeout clamps the timeout requested by the Connect-Timeout-Ms
	// header and by TimeoutFunc. Zero means the timeout that Routes or
	// Timeout give the route, so that a header can shorten the deadline but
	// never lengthen it. Timeout and Routes must not exceed a non-zero
	// MaxTimeout.
	MaxTimeout time.Duration

	// StatusCode answers a request whose handler returned without writing
	// anything after its deadline passed. Defaults to 504 Gateway Timeout:
	// the server is a gateway whose upstreams did not answer in time.
	StatusCode int

	// ClientClosedStatusCode answers (for logs and spans; nobody reads it) a
	// request whose handler returned without writing after its client went
	// away. Defaults to [StatusClientClosedRequest] (499).
	ClientClosedStatusCode int

	// OverrunGrace is how long a handler may still run after its deadline
	// before it is said to have ignored it: past it, the server span
	// records telltale.deadline.overrun_ms, and the request is an anomaly.
	// A handler that honours its context returns within it. Defaults to
	// [DefaultOverrunGrace] (100 ms).
	OverrunGrace time.Duration

	// MeterProvider provides the counter of requests whose client canceled
	// them on purpose (telltale.server.request.canceled). The global
	// provider is used when nil.
	MeterProvider metric.MeterProvider
}

// Deadline returns a middleware that gives every request a context deadline
// of timeout. See [DeadlineConfig] and [DeadlineConfig.ToMiddleware].
func Deadline(timeout time.Duration) func(http.Handler) http.Handler {
	return DeadlineWithConfig(DeadlineConfig{Timeout: timeout})
}

// DeadlineWithConfig returns a [Deadline] middleware with the given config.
// It panics if the config is invalid; use [DeadlineConfig.ToMiddleware] to
// get the error instead.
func DeadlineWithConfig(cfg DeadlineConfig) func(http.Handler) http.Handler {
	return server.Must(cfg.ToMiddleware())
}

// ToMiddleware validates the config and returns the [Deadline] middleware.
//
// The deadline is cooperative: the middleware sets the request context, and
// starts no goroutine; a handler that ignores its context runs to its end,
// and the server span records by how much it overran. The handler writes
// to the ResponseWriter the middleware got, through a wrapper that only
// notes whether it wrote, and that keeps every interface the writer has
// (http.Flusher, http.Hijacker, io.ReaderFrom, http.Pusher, and the
// methods http.ResponseController uses).
//
// net/http handlers return no error: one that gives up on its context just
// returns without writing. If it did, and the request's deadline has
// passed, the middleware answers StatusCode with Content-Type
// application/json and {"message":"request deadline of 2s
// exceeded","timeout_ms":2000}; if the client went away before the
// deadline, it answers ClientClosedStatusCode with {"message":"client
// closed request"}, which nobody reads and which is not an error on the
// span. A handler that wrote anything (a status, a byte, a flush) or
// hijacked the connection keeps its answer. A handler that fails for
// another reason answers for itself: one that returns without writing
// before its deadline gets net/http's empty 200.
func (cfg DeadlineConfig) ToMiddleware() (func(http.Handler) http.Handler, error) {
	skip := cfg.Skipper
	if skip == nil {
		skip = neverSkip
	}
	core, err := server.NewDeadline(server.DeadlineConfig{
		Timeout:                cfg.Timeout,
		Routes:                 cfg.Routes,
		TrustHeader:            cfg.TrustHeader,
		TrustEnvoyHeader:       cfg.TrustEnvoyHeader,
		MaxTimeout:             cfg.MaxTimeout,
		StatusCode:             cfg.StatusCode,
		ClientClosedStatusCode: cfg.ClientClosedStatusCode,
		OverrunGrace:           cfg.OverrunGrace,
		MeterProvider:          cfg.MeterProvider,
	})
	if err != nil {
		return nil, wrapErr(err)
	}
	d := &deadline{core: core, routeFunc: cfg.RouteFunc, timeoutFunc: cfg.TimeoutFunc}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if skip(r) {
				next.ServeHTTP(w, r)
				return
			}
			d.serve(w, r, next)
		})
	}, nil
}

type deadline struct {
	core        *server.Deadline
	routeFunc   func(*http.Request) string
	timeoutFunc func(*http.Request) time.Duration
}

func (d *deadline) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	ctx := r.Context()
	route := r.Pattern // known when Deadline is inside the mux
	if d.routeFunc != nil {
		if rf := d.routeFunc(r); rf != "" {
			route = rf
		}
	}
	var fromFunc time.Duration
	if d.timeoutFunc != nil {
		fromFunc = d.timeoutFunc(r)
	}
	handOn, run := d.core.Begin(r, route, fromFunc)
	returned := false
	defer func() {
		server.KeepForm(handOn, r) // net/http removes the form's files from the request it served only
		if !returned {
			// The handler panicked: the span is still told its route, and
			// the context ends, as net/http ends a request's.
			server.NoteRoute(ctx, d.routeAfter(handOn, route))
			run.Release()
		}
	}()
	watchedW, seen := watch(w)
	next.ServeHTTP(watchedW, handOn)
	returned = true

	route = d.routeAfter(handOn, route)
	server.NoteRoute(ctx, route)
	res := run.End(!seen.wrote, seen.wrote || seen.hijacked, nil, route)
	switch res.Kind {
	case server.DeadlineExceeded:
		// net/http handlers have no errors: the span learns why from here.
		server.NoteError(ctx, fmt.Errorf("%s: %w", res.Message, context.DeadlineExceeded))
		timeoutMS := res.TimeoutMS // on the heap only here, not res for every request
		answer(w, res.Status, deadlineMessage{Message: res.Message, TimeoutMS: &timeoutMS})
	case server.ClientClosed:
		answer(w, res.Status, deadlineMessage{Message: res.Message})
	}
}

// routeAfter is the route of a request once its handler has returned:
// the pattern a mux below set on handOn, else the route known before
// (before), else RouteFunc's answer now that the router has routed.
func (d *deadline) routeAfter(handOn *http.Request, before string) string {
	if handOn.Pattern != "" || before == "" {
		return learntRoute(handOn, d.routeFunc)
	}
	return before
}

// deadlineMessage is the JSON body of a request answered because of its
// deadline, or because its client went away.
type deadlineMessage struct {
	Message   string `json:"message"`
	TimeoutMS *int64 `json:"timeout_ms,omitempty"`
}

// answer writes the answer of a handler that returned without one, to the
// writer the middleware got; as http.Error does, it drops a Content-Length
// the handler may have set for an answer it never wrote.
func answer(w http.ResponseWriter, status int, msg deadlineMessage) {
	body, _ := json.Marshal(msg) // a string and an integer: it cannot fail
	h := w.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
