package transport

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/internal/anomaly"
	"github.com/telltale-go/telltale/internal/errkind"
	"github.com/telltale-go/telltale/internal/spanname"
)

// A Transport is an http.RoundTripper that traces every outbound request
// with otelhttp and tracks every response body until it ends: it drains
// bodies on close so that connections are reused, and reports — on the
// request's span, in a metric and in a log line — every body that leaks,
// then repairs it. Create one with [New] and share it: like http.Transport,
// it is safe for concurrent use.
type Transport struct {
	cfg      config
	base     http.RoundTripper
	otel     http.RoundTripper
	inst     instruments
	reg      registry
	leaks    leakLog
	warnings warnings
	sites    siteCache
	names    spanname.Cache
	replay   *anomaly.Replayer // replays the client spans of unsampled requests (see package sampling)

	closeOnce sync.Once
	stop      chan struct{}
	stopped   chan struct{}
}

// New wraps base in a Transport; nil means [NewHardenedTransport]. Outbound
// spans come from otelhttp; telltale tracks their bodies, reports leaks,
// slow and failed calls on them, and hands the caller exactly what base
// returned: the same status, headers, body bytes, trailers and errors.
//
// A Transport built with [WithMaxBodyAge] runs one goroutine; [Transport.Close]
// stops it.
func New(base http.RoundTripper, opts ...Option) *Transport {
	cfg := newConfig(opts)
	if base == nil {
		base = NewHardenedTransport()
	}
	t := &Transport{
		cfg:     cfg,
		base:    base,
		inst:    newInstruments(cfg.meterProvider),
		replay:  anomaly.NewReplayer(cfg.logger),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	t.reg.limit = int64(cfg.maxTracked)
	t.leaks.limit = recentLeaks
	t.warnings.init(cfg.logger, cfg.logLimit)
	t.otel = otelhttp.NewTransport(innerTransport{t},
		otelhttp.WithTracerProvider(tracerProvider{tp: cfg.tracerProvider}),
		otelhttp.WithMeterProvider(cfg.meterProvider),
		otelhttp.WithPropagators(cfg.propagators),
		otelhttp.WithSpanNameFormatter(t.spanName),
	)
	if cfg.maxAge > 0 {
		go t.watchAges()
	} else {
		close(t.stopped)
	}
	return t
}

// Client returns an *http.Client that sends its requests through t. Like
// http.Client, it is cheap: make one where you need one, or keep one. The
// client has no Timeout of its own: the backstop deadline ([WithTimeout])
// is enforced as a context deadline inside the transport, which, unlike
// http.Client.Timeout, leaves no goroutine behind when a leaked body is
// repaired.
func (t *Transport) Client() *http.Client {
	return &http.Client{Transport: t}
}

// RoundTrip implements http.RoundTripper. It returns what the base
// transport returned — the same error value, the same status, headers,
// trailers and body bytes — with a body that telltale tracks. Two things
// differ by design: a request whose context has no deadline gets the
// backstop deadline ([WithTimeout]: 30 s for the whole exchange, the body
// included, unless made [LongLived]), and a body closed before its end is
// drained ([WithDrain]).
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header == nil {
		return t.base.RoundTrip(req) // its own error for a request it cannot send
	}
	rec := &record{Context: req.Context(), t: t, req: req, start: time.Now()}
	rec.npcs = runtime.Callers(2, rec.pcs[:])
	ctx := context.Context(rec)
	if t.cfg.timeout > 0 {
		if _, ok := req.Context().Deadline(); !ok && !longLived(req) {
			ctx, rec.cancel = context.WithTimeout(rec, t.cfg.timeout)
		}
	}
	rec.sent = *req.WithContext(ctx) // the copy WithContext makes stays on the stack
	resp, err := t.otel.RoundTrip(&rec.sent)
	if err != nil {
		rec.release()
		// otelhttp ended the span of the failed call (otelSpan.End), but
		// for a failure of its own.
		t.callFailed(rec, err)
		return nil, err
	}
	return t.track(rec, resp), nil
}

// innerTransport sits between otelhttp and the base transport, where the
// client span exists and the base's answer is not wrapped yet.
type innerTransport struct{ t *Transport }

func (in innerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t := in.t
	rec := recordFrom(r.Context())
	if rec == nil { // not sent through Transport.RoundTrip
		return t.base.RoundTrip(r)
	}
	rec.span = rec.otel.Span
	if rec.span == nil {
		rec.span = trace.SpanFromContext(r.Context())
	}
	if deadline, ok := r.Context().Deadline(); ok {
		rec.budget, rec.hasBudget = time.Until(deadline), true
	}
	r = withTimeoutHeader(r, rec.budget, rec.hasBudget, t.cfg.propagateDeadline)
	t.traceCall(rec)
	rec.forwarded = r
	resp, err := t.base.RoundTrip(r)
	if err == nil && resp == nil {
		// What otelhttp would answer, naming the base transport as it
		// would behind plain otelhttp.
		err = fmt.Errorf("http: RoundTripper implementation (%T) returned a nil *Response with a nil error", t.base)
	} else if err == nil && resp.Body == nil && resp.ContentLength > 0 && r.Method != http.MethodHead {
		err = fmt.Errorf("http: RoundTripper implementation (%T) returned a *Response with content length %d but a nil Body", t.base, resp.ContentLength)
	}
	if err != nil {
		rec.failedAt, rec.err = time.Now(), err
		if rec.traced() {
			rec.errKind = errkind.Of(err, r.Context().Err())
		}
		return nil, err
	}
	rec.headers = time.Now()
	rec.orig = resp
	rec.under = resp.Body
	rec.status = resp.StatusCode
	if resp.Body != nil {
		// otelhttp wraps the body it is given, to end the span; telltale
		// ends the span itself, and RoundTrip puts the real body back.
		// Given a writable placeholder, otelhttp's wrapper costs one
		// allocation instead of two.
		resp.Body = placeholderBody{}
	}
	return resp, nil
}

// traceCall finds out, once the client span exists, who records the call:
// its live span, a replay (the head sampler dropped it and its provider
// can replay it), the inbound request it was made for.
func (t *Transport) traceCall(rec *record) {
	// Asked once, now: otelhttp ends the span of a failed call before
	// telltale looks again, and an ended span is no longer recording.
	rec.recording = rec.span.IsRecording()
	sc := rec.span.SpanContext()
	if !sc.IsValid() {
		return // tracing is off
	}
	// A span the head sampler dropped is replayed if anomalous; not one
	// that is a no-op tracer's, which carries its parent's ids and names
	// no call.
	rec.parentID = trace.SpanContextFromContext(rec.Context).SpanID()
	rec.ownSpan = sc.SpanID() != rec.parentID
	if !sc.IsSampled() && !sc.IsRemote() && rec.ownSpan {
		rec.replay = t.replay.Tracer(rec.span.TracerProvider())
	}
	if req := anomaly.RequestFrom(rec.Context); req != nil && req.Recording() && req.SpanContext().TraceID() == sc.TraceID() {
		rec.request = req
	}
	if rec.recording {
		var buf [3]attribute.KeyValue
		rec.span.SetAttributes(rec.sentAttributes().Append(buf[:0])...)
	}
}

// CloseIdleConnections closes the base transport's idle connections.
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// Close shuts the Transport down at the end of a service's life: it stops
// the goroutine of [WithMaxBodyAge], if any; reports every body still open
// as a leak with reason [LeakOpenAtClose] — ending its span, so that it is
// exported when the tracer provider is shut down next — and closes it
// (unless report-only); logs the count of leak warnings it suppressed, if
// any; and closes idle connections. Call it after the server has stopped
// serving and before shutting down the tracer and meter providers. Close is
// idempotent; the Transport must not be used afterwards.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() {
		close(t.stop)
		<-t.stopped
		for _, rec := range t.reg.all() {
			t.reportLeak(rec, LeakOpenAtClose)
		}
		t.warnings.close()
		t.CloseIdleConnections()
	})
	return nil
}
