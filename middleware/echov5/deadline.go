package echov5

import (
	"encoding/json"
	"time"

	"github.com/labstack/echo/v5"
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
	Skipper func(c *echo.Context) bool

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
	TimeoutFunc func(c *echo.Context) time.Duration

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
// WriteHeader. A handler that ignores its context runs to its end; the
// middleware then records on the server span by how much it overran.
//
// When the handler returns an error and the request's deadline has passed,
// the middleware returns an error with StatusCode that Echo's
// DefaultHTTPErrorHandler answers with the JSON body
// {"message":"request deadline of 2s exceeded","timeout_ms":2000}: it
// implements echo.HTTPStatusCoder and json.Marshaler, and wraps the
// handler's error, so that errors.Is and errors.As see through it. When the
// client went away instead, it returns such an error with
// ClientClosedStatusCode and {"message":"client closed request"}. A 4xx
// the handler chose is its own answer, and a response already committed is
// left alone: then the handler's error goes up unchanged.
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
	return skippable(skip, func(c *echo.Context, next echo.HandlerFunc) error {
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
		// c.Path() is the route Echo found, also when Deadline ran before
		// routing (e.Pre).
		res := run.End(err != nil, committed(c), err, c.Path())
		if res.Kind == server.DeadlineExceeded || res.Kind == server.ClientClosed {
			return &deadlineError{res: res, err: err}
		}
		return err
	}), nil
}

// deadlineError is Deadline's answer to a request that failed because of
// its deadline, or whose client went away: Echo v5's DefaultHTTPErrorHandler
// answers an echo.HTTPStatusCoder with its status, and one that is a
// json.Marshaler with itself as the body. It wraps the handler's error
// rather than being an *echo.HTTPError, whose body is its message alone.
type deadlineError struct {
	res server.Result
	err error // the handler's
}

// Error is the answer's message, then why the handler failed.
func (e *deadlineError) Error() string {
	if e.err == nil {
		return e.res.Message
	}
	return e.res.Message + ": " + server.Sentence(e.err, decodeError)
}

func (e *deadlineError) Unwrap() error { return e.err }

// StatusCode implements echo.HTTPStatusCoder.
func (e *deadlineError) StatusCode() int { return e.res.Status }

// MarshalJSON is the answer's body: the message, and for a deadline the
// request's timeout in whole milliseconds.
func (e *deadlineError) MarshalJSON() ([]byte, error) {
	if e.res.Kind != server.DeadlineExceeded {
		return json.Marshal(struct {
			Message string `json:"message"`
		}{e.res.Message})
	}
	return json.Marshal(struct {
		Message   string `json:"message"`
		TimeoutMS int64  `json:"timeout_ms"`
	}{e.res.Message, e.res.TimeoutMS})
}
