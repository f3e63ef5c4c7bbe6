package middleware

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"

	"github.com/telltale-go/telltale/internal/lazyctx"
	"github.com/telltale-go/telltale/internal/timeoutheader"
	"github.com/telltale-go/telltale/vocab"
)

// StatusClientClosedRequest is the status nginx made up for a request whose
// client went away before the answer: no client reads it, but logs and
// server spans record it, and it is a 4xx, so it is not counted as a server
// error.
const StatusClientClosedRequest = 499

// Where a request's deadline came from, recorded as
// telltale.deadline.source, from the most specific.
const (
	sourceHeader  = "header"  // the caller's budget, from Connect-Timeout-Ms
	sourceEnvoy   = "envoy"   // the route timeout Envoy announced, shorter than any other
	sourceFunc    = "func"    // DeadlineConfig.TimeoutFunc
	sourceRoute   = "route"   // DeadlineConfig.Routes
	sourceDefault = "default" // DeadlineConfig.Timeout
	sourceParent  = "parent"  // the request context already had an earlier deadline
)

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
	// you trust: the header can ask for any deadline up to MaxTimeout.
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
	return must(cfg.ToMiddleware())
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
// the middleware returns an
// *echo.HTTPError with StatusCode and a JSON message
// {"message":"request deadline of 2s exceeded","timeout_ms":2000}, the
// handler's error as its internal error. When the client went away instead,
// it returns ClientClosedStatusCode. A response already committed is left
// alone: the handler's error goes up unchanged.
func (cfg DeadlineConfig) ToMiddleware() (echo.MiddlewareFunc, error) {
	if cfg.Timeout <= 0 {
		return nil, errors.New("middleware: Deadline: Timeout must be positive")
	}
	if cfg.MaxTimeout < 0 {
		return nil, errors.New("middleware: Deadline: MaxTimeout must not be negative")
	}
	if cfg.MaxTimeout > 0 && cfg.Timeout > cfg.MaxTimeout {
		return nil, fmt.Errorf("middleware: Deadline: Timeout %s exceeds MaxTimeout %s", cfg.Timeout, cfg.MaxTimeout)
	}
	routes := make(map[string]time.Duration, len(cfg.Routes))
	for route, d := range cfg.Routes {
		if d <= 0 {
			return nil, fmt.Errorf("middleware: Deadline: timeout of route %q must be positive", route)
		}
		if cfg.MaxTimeout > 0 && d > cfg.MaxTimeout {
			return nil, fmt.Errorf("middleware: Deadline: timeout %s of route %q exceeds MaxTimeout %s", d, route, cfg.MaxTimeout)
		}
		routes[route] = d
	}
	cfg.Routes = routes // a copy: the caller's map may change
	if cfg.Skipper == nil {
		cfg.Skipper = neverSkip
	}
	if cfg.StatusCode == 0 {
		cfg.StatusCode = http.StatusGatewayTimeout
	}
	if cfg.ClientClosedStatusCode == 0 {
		cfg.ClientClosedStatusCode = StatusClientClosedRequest
	}
	if !validStatus(cfg.StatusCode) || !validStatus(cfg.ClientClosedStatusCode) {
		return nil, errors.New("middleware: Deadline: status codes must be between 100 and 999")
	}

	return skippable(cfg.Skipper, cfg.serve), nil
}

func validStatus(code int) bool { return code >= 100 && code <= 999 }

func (cfg *DeadlineConfig) serve(c echo.Context, next echo.HandlerFunc) error {
	start := time.Now()
	req := c.Request()
	parent := req.Context()
	t := cfg.timeout(c, req)
	deadline := start.Add(t.d)
	if pd, ok := parent.Deadline(); ok && !pd.After(deadline) {
		deadline, t.source = pd, sourceParent
	}

	ctx := parent
	if t.source != sourceParent {
		// One allocation for the context and the request that carries it.
		r := &deadlineRequest{}
		r.ctx.InitDeadline(parent, deadline, deadlineRequestKey{}, r)
		r.req = *req.WithContext(&r.ctx)
		c.SetRequest(&r.req)
		defer r.ctx.End(nil)
		ctx = &r.ctx
	}
	defer func() { keepForm(c.Request(), req) }() // when the handler panics
	err := next(c)
	restoreRequest(c, req) // its context is over: Echo's error handler answers with the request as it came

	overrun := time.Since(deadline)
	res, out := cfg.outcome(c, parent, ctx, err, overrun, deadline.Sub(start))
	recordDeadline(parent, deadline.Sub(start), t, overrun, res)
	return out
}

// A deadlineResult is how a request ended, as far as its deadline goes.
type deadlineResult int

const (
	resultOwn          deadlineResult = iota // the handler's own answer or error
	resultDeadline                           // answered with StatusCode
	resultClientClosed                       // answered with ClientClosedStatusCode
)

// outcome decides what the middleware returns once the handler has.
func (cfg *DeadlineConfig) outcome(c echo.Context, parent, ctx context.Context, err error, overrun, budget time.Duration) (deadlineResult, error) {
	if err == nil || c.Response().Committed {
		return resultOwn, err
	}
	switch {
	// The request's context says which came first: a deadline that ran out
	// before the client left is still the deadline.
	case errors.Is(parent.Err(), context.Canceled) && !errors.Is(ctx.Err(), context.DeadlineExceeded):
		return resultClientClosed, echo.NewHTTPError(cfg.ClientClosedStatusCode, "client closed request").WithInternal(internal(err))
	case overrun >= 0:
		// Only this request's deadline running out makes a 504: net/http's
		// own timeouts (response headers, TLS handshake) and deadlines the
		// handler set itself also match context.DeadlineExceeded, and
		// those are the handler's errors to answer.
		var he *echo.HTTPError
		if errors.As(err, &he) && he.Code < http.StatusInternalServerError && !errors.Is(err, context.DeadlineExceeded) {
			return resultOwn, err // the handler's own answer about the request, not about time
		}
		return resultDeadline, echo.NewHTTPError(cfg.StatusCode, deadlineMessage{
			Message:   "request deadline of " + budget.Round(time.Millisecond).String() + " exceeded",
			TimeoutMS: budget.Milliseconds(),
		}).WithInternal(internal(err))
	}
	return resultOwn, err
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

// deadlineRequest is the request handed to the handler, and its context.
type deadlineRequest struct {
	ctx lazyctx.Context
	req http.Request
}

type deadlineRequestKey struct{}

// withContext gives c a copy of its request with ctx, and returns how to
// put the request back. When that request is the copy Deadline made and
// handed on, it is reused: Leaks, right after Deadline, costs no request
// copy of its own.
func withContext(c echo.Context, ctx context.Context) requestSwap {
	req := c.Request()
	swap := requestSwap{c: c, prev: req, prevCtx: req.Context()}
	if r, ok := req.Context().Value(deadlineRequestKey{}).(*deadlineRequest); ok && &r.req == req {
		r.req = *req.WithContext(ctx) // the copy WithContext makes stays on the stack
		swap.inPlace = true
		return swap
	}
	c.SetRequest(req.WithContext(ctx))
	return swap
}

// A requestSwap puts back the request a middleware replaced, so that what
// runs after it — Echo's error handler, the middleware before — sees the
// request, and the context, it had.
type requestSwap struct {
	c       echo.Context
	prev    *http.Request
	prevCtx context.Context
	inPlace bool
}

func (s requestSwap) undo() {
	if s.inPlace {
		*s.prev = *s.prev.WithContext(s.prevCtx)
	}
	restoreRequest(s.c, s.prev)
}

// restoreRequest gives c the request to back, with the multipart form the
// handler parsed on whatever request c has now (keepForm).
func restoreRequest(c echo.Context, to *http.Request) {
	keepForm(c.Request(), to)
	c.SetRequest(to)
}

// keepForm gives the request a middleware got the multipart form parsed on
// the copy it handed on: net/http removes the form's temporary files after
// the handler only if it finds the form on the request it served
// (otelhttp hands it back the same way).
func keepForm(from, to *http.Request) {
	if from != to && from.MultipartForm != nil && to.MultipartForm == nil {
		to.MultipartForm = from.MultipartForm
	}
}

// deadlineMessage is the JSON body of a request answered because of its
// deadline.
type deadlineMessage struct {
	Message   string `json:"message"`
	TimeoutMS int64  `json:"timeout_ms"`
}

// requestTimeout is a request's timeout, and how it was chosen.
type requestTimeout struct {
	d         time.Duration
	source    string
	clamped   bool
	headerErr error // a header that could not be used
}

// timeout picks the request's timeout and says where it came from.
func (cfg *DeadlineConfig) timeout(c echo.Context, req *http.Request) requestTimeout {
	t := requestTimeout{d: cfg.Timeout, source: sourceDefault}
	if rd, ok := cfg.Routes[c.Path()]; ok {
		t.d, t.source = rd, sourceRoute
	}
	limit := cfg.MaxTimeout
	if limit == 0 {
		limit = t.d
	}
	if cfg.TimeoutFunc != nil {
		if fd := cfg.TimeoutFunc(c); fd > 0 {
			t.d, t.source = fd, sourceFunc
		}
	}
	if cfg.MaxTimeout == 0 && t.d < limit {
		limit = t.d // the header may shorten TimeoutFunc's timeout, not lengthen it
	}
	if cfg.TrustHeader {
		if hd, ok := t.header(req, timeoutheader.Connect); ok {
			t.d, t.source = hd, sourceHeader
		}
	}
	if t.d > limit {
		t.d, t.clamped = limit, true
	}
	if cfg.TrustEnvoyHeader {
		if ed, ok := t.header(req, timeoutheader.Envoy); ok && ed < t.d {
			t.d, t.source = ed, sourceEnvoy
		}
	}
	return t
}

// header reads a timeout header; a malformed one is remembered, to be
// recorded.
func (t *requestTimeout) header(req *http.Request, name string) (time.Duration, bool) {
	v := req.Header.Get(name)
	if v == "" {
		return 0, false
	}
	d, err := timeoutheader.Parse(v)
	if err != nil {
		t.headerErr = fmt.Errorf("%s: %w", name, err)
		return 0, false
	}
	return d, true
}

// recordDeadline puts what the middleware knows on the server span when it
// is worth seeing — the deadline passed (an answer with StatusCode), the
// client went away, the handler overran, the timeout asked for was
// clamped, a timeout header was malformed — in one call: the SDK takes a
// lock per call. A healthy request's span carries nothing of it. All but
// the clamp and the header are anomalies, which an unsampled request is
// exported for.
func recordDeadline(ctx context.Context, timeout time.Duration, t requestTimeout, overrun time.Duration, res deadlineResult) {
	anomalous := overrun > 0 || res != resultOwn
	if !anomalous && !t.clamped && t.headerErr == nil {
		return
	}
	rec := recorderOf(ctx)
	if !rec.recording() {
		return
	}
	var buf [5]attribute.KeyValue
	attrs := append(buf[:0],
		attribute.Float64(vocab.AttrDeadlineTimeout, ms(timeout)),
		attribute.String(vocab.AttrDeadlineSource, t.source),
	)
	if t.clamped {
		attrs = append(attrs, attribute.Bool(vocab.AttrDeadlineClamped, true))
	}
	if overrun > 0 {
		attrs = append(attrs, attribute.Float64(vocab.AttrDeadlineOverrun, ms(overrun)))
	}
	switch res {
	case resultDeadline:
		attrs = append(attrs, attribute.Bool(vocab.AttrDeadlineExceeded, true))
	case resultClientClosed:
		attrs = append(attrs, attribute.Bool(vocab.AttrClientGone, true))
	}
	rec.setAttributes(attrs...)
	if anomalous {
		rec.anomaly()
	}
	if t.headerErr != nil {
		rec.addEvent(vocab.EventTimeoutHeaderInvalid, time.Now(),
			attribute.String(vocab.AttrTimeoutHeaderError, t.headerErr.Error()))
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
