package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/telltale-go/telltale/internal/anomaly"
	"github.com/telltale-go/telltale/internal/instrument"
	"github.com/telltale-go/telltale/internal/lazyctx"
	"github.com/telltale-go/telltale/internal/timeoutheader"
	"github.com/telltale-go/telltale/internal/version"
	"github.com/telltale-go/telltale/vocab"
)

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

// DefaultOverrunGrace is how long a handler may run past its deadline
// before it is said to have overrun it: the time a handler that honours
// its context takes to notice and return, on a loaded machine.
const DefaultOverrunGrace = 100 * time.Millisecond

// DeadlineConfig is what every adapter's DeadlineConfig becomes (its
// Skipper and TimeoutFunc stay with the adapter).
type DeadlineConfig struct {
	Timeout                time.Duration
	Routes                 map[string]time.Duration
	TrustHeader            bool
	TrustEnvoyHeader       bool
	MaxTimeout             time.Duration
	StatusCode             int
	ClientClosedStatusCode int
	OverrunGrace           time.Duration
	MeterProvider          metric.MeterProvider

	// Errors reads the framework's HTTP errors: a 4xx the handler chose is
	// its answer, not a deadline's.
	Errors ErrorDecoder
}

// A Deadline gives every request a context deadline and decides, once the
// handler has returned, whether the request was answered because of it.
type Deadline struct {
	cfg      DeadlineConfig
	canceled metric.Int64Counter
}

// NewDeadline validates cfg, fills in its defaults, and returns its
// Deadline.
func NewDeadline(cfg DeadlineConfig) (*Deadline, error) {
	if cfg.Timeout <= 0 {
		return nil, errors.New("Deadline: Timeout must be positive")
	}
	if cfg.MaxTimeout < 0 {
		return nil, errors.New("Deadline: MaxTimeout must not be negative")
	}
	if cfg.MaxTimeout > 0 && cfg.Timeout > cfg.MaxTimeout {
		return nil, fmt.Errorf("Deadline: Timeout %s exceeds MaxTimeout %s", cfg.Timeout, cfg.MaxTimeout)
	}
	if cfg.OverrunGrace < 0 {
		return nil, errors.New("Deadline: OverrunGrace must not be negative")
	}
	routes := make(map[string]time.Duration, len(cfg.Routes))
	for route, d := range cfg.Routes {
		if d <= 0 {
			return nil, fmt.Errorf("Deadline: timeout of route %q must be positive", route)
		}
		if cfg.MaxTimeout > 0 && d > cfg.MaxTimeout {
			return nil, fmt.Errorf("Deadline: timeout %s of route %q exceeds MaxTimeout %s", d, route, cfg.MaxTimeout)
		}
		routes[route] = d
	}
	cfg.Routes = routes // a copy: the caller's map may change
	if cfg.StatusCode == 0 {
		cfg.StatusCode = http.StatusGatewayTimeout
	}
	if cfg.ClientClosedStatusCode == 0 {
		cfg.ClientClosedStatusCode = StatusClientClosedRequest
	}
	if !validStatus(cfg.StatusCode) || !validStatus(cfg.ClientClosedStatusCode) {
		return nil, errors.New("Deadline: status codes must be between 100 and 999")
	}
	if cfg.OverrunGrace == 0 {
		cfg.OverrunGrace = DefaultOverrunGrace
	}
	mp := cfg.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(version.MiddlewareScope, metric.WithInstrumentationVersion(version.Version))
	return &Deadline{cfg: cfg, canceled: instrument.Counter(m, vocab.MetricClientCanceled, "{request}",
		"Requests whose client went away before their deadline: a deliberate cancellation, not an anomaly; by route.")}, nil
}

func validStatus(code int) bool { return code >= 100 && code <= 999 }

// A DeadlineRun is one request's deadline, from Begin to End.
type DeadlineRun struct {
	d        *Deadline
	start    time.Time
	parent   context.Context
	ctx      context.Context
	deadline time.Time
	timeout  requestTimeout
	dr       *deadlineRequest // nil when the parent's deadline was earlier
	route    string
}

// deadlineRequest is the request handed to the handler, and its context:
// one allocation for both. Leaks, below Deadline, hands it on with its own
// context before anything else has seen it (WithContext).
type deadlineRequest struct {
	ctx lazyctx.Context
	req http.Request
	// For a deadline the caller propagated: when the client went away
	// (Unix nanoseconds; zero while it has not), noted by watch.
	gone  atomic.Int64
	watch func() bool // stops watching
}

// noteGone notes when the client went away.
func (dr *deadlineRequest) noteGone() { dr.gone.Store(time.Now().UnixNano()) }

type deadlineRequestKey struct{}

// Begin gives r its deadline — from route's timeout, the TimeoutFunc's
// (fromFunc, zero for none), the caller's headers, clamped — and returns
// the request to hand on, and the run to end once the handler returned.
func (d *Deadline) Begin(r *http.Request, route string, fromFunc time.Duration) (*http.Request, DeadlineRun) {
	run := DeadlineRun{d: d, start: time.Now(), parent: r.Context(), route: route}
	run.timeout = d.timeoutOf(r, route, fromFunc)
	run.deadline = run.start.Add(run.timeout.d)
	if pd, ok := run.parent.Deadline(); ok && !pd.After(run.deadline) {
		run.deadline, run.timeout.source = pd, sourceParent
	}
	run.ctx = run.parent
	if run.timeout.source == sourceParent {
		return r, run
	}
	dr := &deadlineRequest{}
	dr.ctx.InitDeadline(run.parent, run.deadline, deadlineRequestKey{}, dr)
	dr.req = *r.WithContext(&dr.ctx)
	run.dr, run.ctx = dr, &dr.ctx
	if run.timeout.source == sourceHeader || run.timeout.source == sourceEnvoy {
		// Whether a client that goes away gave up at the deadline it
		// propagated or canceled before it depends on when it went, which
		// the handler may learn long after.
		dr.watch = context.AfterFunc(run.parent, dr.noteGone)
	}
	return &dr.req, run
}

// WithContext returns the request to hand on with ctx, a context derived
// from r's: when r is the request Deadline handed on, it is given ctx in
// place, before anything below has seen it — the request Leaks hands on
// costs no copy of its own behind Deadline — and a copy otherwise. Nothing
// writes to it once handed on.
func WithContext(r *http.Request, ctx context.Context) *http.Request {
	if dr, ok := r.Context().Value(deadlineRequestKey{}).(*deadlineRequest); ok && &dr.req == r {
		dr.req = *r.WithContext(ctx) // the copy WithContext makes stays on the stack
		return r
	}
	return r.WithContext(ctx)
}

// ResultKind is how a request ended, as far as its deadline goes.
type ResultKind int

const (
	// Own is the handler's own answer or error.
	Own ResultKind = iota
	// DeadlineExceeded is an answer with StatusCode: the request failed
	// because of its deadline.
	DeadlineExceeded
	// ClientClosed is an answer with ClientClosedStatusCode: the client
	// went away first.
	ClientClosed
)

// A Result is what the adapter answers once the handler has returned.
type Result struct {
	Kind      ResultKind
	Status    int    // the status to answer, for DeadlineExceeded and ClientClosed
	Message   string // "request deadline of 2s exceeded", "client closed request"
	TimeoutMS int64  // the request's timeout
}

// End ends the request's deadline once its handler has returned and says
// what to answer: failed says the handler failed (it returned an error;
// without errors, it returned without writing), committed that an answer
// was written already, err is the handler's error, if any. route is the
// route template if it was learnt only during the request. What is worth
// seeing goes on the server span.
func (run *DeadlineRun) End(failed, committed bool, err error, route string) Result {
	if route != "" {
		run.route = route
	}
	overrun := time.Since(run.deadline)
	kind := run.outcome(failed, committed, err, overrun)
	budget := run.deadline.Sub(run.start)
	res := Result{Kind: kind, TimeoutMS: budget.Milliseconds()}
	switch kind {
	case DeadlineExceeded:
		res.Status, res.Message = run.d.cfg.StatusCode, "request deadline of "+budget.Round(time.Millisecond).String()+" exceeded"
	case ClientClosed:
		res.Status, res.Message = run.d.cfg.ClientClosedStatusCode, "client closed request"
	}
	run.record(res, overrun, budget)
	run.Release()
	return res
}

// Release ends the request's context, as net/http ends a request's when
// its handler returns: the goroutines left behind see it done, and its
// timer, if any, is released. End does it; an adapter defers it too, for a
// handler that panics. Later calls do nothing.
func (run *DeadlineRun) Release() {
	if run.dr != nil {
		if run.dr.watch != nil {
			run.dr.watch()
			run.dr.watch = nil
		}
		run.dr.ctx.End(nil)
	}
}

// outcome decides what the request was answered with.
func (run *DeadlineRun) outcome(failed, committed bool, err error, overrun time.Duration) ResultKind {
	if !failed || committed {
		return Own
	}
	switch {
	// The request's context says which came first: a deadline that ran out
	// before the client left is still the deadline.
	case errors.Is(run.parent.Err(), context.Canceled) && !errors.Is(run.ctx.Err(), context.DeadlineExceeded):
		return ClientClosed
	case overrun >= 0:
		// Only this request's deadline running out makes a 504: net/http's
		// own timeouts (response headers, TLS handshake) and deadlines the
		// handler set itself also match context.DeadlineExceeded, and
		// those are the handler's errors to answer.
		if err != nil && run.d.cfg.Errors != nil && !errors.Is(err, context.DeadlineExceeded) {
			if status, _, _, ok := run.d.cfg.Errors(err); ok && status < http.StatusInternalServerError {
				return Own // the handler's own answer about the request, not about time
			}
		}
		return DeadlineExceeded
	}
	return Own
}

// record puts what the deadline says on the server span when it is worth
// seeing — the request was answered because of its deadline, its caller
// gave up on it, its handler ignored the deadline (overran it by more than
// the grace), the timeout asked for was clamped, a timeout header was
// malformed — in one call: the SDK takes a lock per call. A healthy
// request's span carries nothing of it. A client that went away before the
// deadline it gave (or without one) canceled on purpose: that is counted,
// and marked on the span, but is no anomaly.
func (run *DeadlineRun) record(res Result, overrun, budget time.Duration) {
	t := run.timeout
	overran := overrun > run.d.cfg.OverrunGrace
	gaveUp := res.Kind == ClientClosed && run.callerGaveUp()
	if res.Kind == ClientClosed && !gaveUp {
		run.d.canceled.Add(context.Background(), 1, metric.WithAttributes(semconv.HTTPRoute(routePath(run.route))))
	}
	if res.Kind == Own && !overran && !t.clamped && t.headerErr == nil {
		return
	}
	rec := anomaly.RequestFrom(run.parent)
	if rec == nil || !rec.Recording() {
		return
	}
	var buf [6]attribute.KeyValue
	attrs := append(buf[:0],
		attribute.Int64(vocab.AttrDeadlineTimeout, budget.Milliseconds()),
		attribute.String(vocab.AttrDeadlineSource, t.source),
	)
	if t.clamped {
		attrs = append(attrs, attribute.Bool(vocab.AttrDeadlineClamped, true))
	}
	if overran {
		attrs = append(attrs, attribute.Int64(vocab.AttrDeadlineOverrun, overrun.Milliseconds()))
	}
	switch res.Kind {
	case DeadlineExceeded:
		attrs = append(attrs, attribute.Bool(vocab.AttrDeadlineExceeded, true))
	case ClientClosed:
		attrs = append(attrs, attribute.Bool(vocab.AttrClientGone, true))
		if gaveUp {
			attrs = append(attrs, attribute.Bool(vocab.AttrCallerGaveUp, true))
		}
	}
	rec.SetAttributes(attrs...)
	switch {
	case res.Kind == DeadlineExceeded:
		rec.Anomaly(anomaly.KindDeadline, "")
	case gaveUp:
		rec.Anomaly(anomaly.KindCallerGaveUp, "")
	}
	if overran {
		rec.Anomaly(anomaly.KindDeadline, "overrun")
	}
	if t.headerErr != nil {
		rec.AddEvent(vocab.EventTimeoutHeaderInvalid, time.Now(),
			attribute.String(vocab.AttrTimeoutHeaderError, t.headerErr.Error()))
	}
}

// callerGaveUp reports whether the client that went away did so at or
// after the deadline it propagated (Connect-Timeout-Ms): it gave up
// waiting, which is an anomaly of this request (Envoy gives up at the
// route timeout it announced, likewise) — judged by when it went, not by
// when the handler returned. Its deadline, counted from its side, comes
// before this request's by the time the request took to arrive, hence a
// tolerance of a tenth of the budget (at least 5 ms).
func (run *DeadlineRun) callerGaveUp() bool {
	if run.timeout.source != sourceHeader && run.timeout.source != sourceEnvoy || run.dr == nil {
		return false
	}
	gone := time.Now()
	if ns := run.dr.gone.Load(); ns != 0 {
		gone = time.Unix(0, ns)
	}
	tolerance := max(run.timeout.d/10, 5*time.Millisecond)
	return !gone.Before(run.deadline.Add(-tolerance))
}

// requestTimeout is a request's timeout, and how it was chosen.
type requestTimeout struct {
	d         time.Duration
	source    string
	clamped   bool
	headerErr error // a header that could not be used
}

// timeoutOf picks the request's timeout and says where it came from.
func (d *Deadline) timeoutOf(req *http.Request, route string, fromFunc time.Duration) requestTimeout {
	cfg := &d.cfg
	t := requestTimeout{d: cfg.Timeout, source: sourceDefault}
	if rd, ok := cfg.Routes[route]; ok && route != "" {
		t.d, t.source = rd, sourceRoute
	}
	limit := cfg.MaxTimeout
	if limit == 0 {
		limit = t.d
	}
	if fromFunc > 0 {
		t.d, t.source = fromFunc, sourceFunc
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

// KeepForm gives the request a middleware got the multipart form parsed on
// the copy it handed on: net/http removes the form's temporary files after
// the handler only if it finds the form on the request it served
// (otelhttp hands it back the same way). It writes to the request the
// middleware got, which the handler never saw.
func KeepForm(from, to *http.Request) {
	if from != to && from.MultipartForm != nil && to.MultipartForm == nil {
		to.MultipartForm = from.MultipartForm
	}
}
