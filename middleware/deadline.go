package middleware

import (
	"fmt"
	"time"

	"github.com/labstack/echo/v4"
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
	// is. Defaults to never skipping.
	Skipper func(c echo.Context) bool

	// Timeout is the deadline of a request, from the moment the middleware
	// runs, when nothing more specific applies. Required, positive.
	Timeout time.Duration

	// Routes overrides Timeout for some routes, keyed by Echo route
	// template (c.Path(), "/users/:id"), whatever the method. Values must
	// be positive.
	Routes map[string]time.Duration

	// TimeoutFunc, if set, decides the timeout of a request; it wins over
	// Routes and Timeout when it returns a positive duration, and defers to
	// them otherwise. It runs on every request: keep it cheap.
	TimeoutFunc func(c echo.Context) time.Duration

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
	// header and by TimeoutFunc. Zero means the timeout that Routes or Timeout give the
	// route, so that a header can shorten the deadline but never lengthen
	// it. Timeout and Routes must not exceed a non-zero MaxTimeout.
	MaxTimeout time.Duration

	// StatusCode answers a request whose handler returned an error after its
	// deadline passed, or an error caused by the deadline. Defaults to 504
	// Gateway Timeout: the server is a gateway whose upstreams did not answer
	// in time.
	StatusCode int

	// ClientClosedStatusCode answers (for logs and spans; nobody reads it) a
	// request whose handler returned an error after its client went away.
	// Defaults to [StatusClientClosedRequest] (499).
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
func Deadline(timeout time.Duration) echo.MiddlewareFunc {
	return DeadlineWithConfig(DeadlineConfig{Timeout: timeout})
}

// DeadlineWithConfig returns a [Deadline] middleware with the given config.
// It panics if the config is invalid; use [DeadlineConfig.ToMiddleware] to
// get the error instead.
func DeadlineWithConfig(cfg DeadlineConfig) echo.MiddlewareFunc {
	return server.Must(cfg.ToMiddleware())
}

// ToMiddleware validates the config and returns the [Deadline] middleware.
//
// The deadline is cooperative, as in Echo's ContextTimeout: the middleware
// sets the request context and nothing else — no goroutine per request, no
// swapped ResponseWriter, so no race with the handler and no double
// WriteHeader (the faults of Echo's deprecated Timeout middleware). A handler
// that ignores its context runs to its end; the middleware then records on
// the server span by how much it overran.
//
// The context's timer is only created if someone waits on ctx.Done() — an
// outbound request does, a handler that only calls ctx.Err() or Deadline()
// does not — and the context and the request copy that carries it share one
// allocation, so that the middleware costs one allocation of its own per
// request, plus the closure Echo v4 allocates per request for any middleware
// that wraps the next handler (see BenchmarkServer/deadline).
//
// When the handler returns an error and the request's deadline has passed,
// the middleware returns an *echo.HTTPError with StatusCode and a JSON
// message {"message":"request deadline of 2s exceeded","timeout_ms":2000},
// the handler's error as its internal error. When the client went away
// instead, it returns ClientClosedStatusCode. A response already committed
// is left alone: the handler's error goes up unchanged.
func (cfg DeadlineConfig) ToMiddleware() (echo.MiddlewareFunc, error) {
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
		Errors:                 decodeError,
	})
	if err != nil {
		return nil, wrapErr(err)
	}
	timeoutFunc := cfg.TimeoutFunc
	return skippable(skip, func(c echo.Context, next echo.HandlerFunc) error {
		req := c.Request()
		var fromFunc time.Duration
		if timeoutFunc != nil {
			fromFunc = timeoutFunc(c)
		}
		handOn, run := core.Begin(req, c.Path(), fromFunc)
		defer run.Release()
		c.SetRequest(handOn)
		defer func() { server.KeepForm(c.Request(), req) }() // when the handler panics
		err := next(c)
		restoreRequest(c, req) // its context is over: Echo's error handler answers with the request as it came
		res := run.End(err != nil, c.Response().Committed, err, "")
		switch res.Kind {
		case server.DeadlineExceeded:
			return echo.NewHTTPError(res.Status, deadlineMessage{Message: res.Message, TimeoutMS: res.TimeoutMS}).WithInternal(internal(err))
		case server.ClientClosed:
			return echo.NewHTTPError(res.Status, res.Message).WithInternal(internal(err))
		}
		return err
	}), nil
}

// internal wraps the handler's error so that it can be the internal error of
// the middleware's *echo.HTTPError: Echo's DefaultHTTPErrorHandler answers
// with an internal *echo.HTTPError instead of the outer one, so it must not
// be one. errors.Is and errors.As still see through it.
func internal(err error) error {
	if _, ok := err.(*echo.HTTPError); ok {
		return fmt.Errorf("middleware: %w", err)
	}
	return err
}

// deadlineMessage is the JSON body of a request answered because of its
// deadline. Its text, in a span or a log, is its message.
type deadlineMessage struct {
	Message   string `json:"message"`
	TimeoutMS int64  `json:"timeout_ms"`
}

func (m deadlineMessage) String() string { return m.Message }
