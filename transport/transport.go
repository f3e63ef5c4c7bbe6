package transport

import (
	"context"
	"io"
	"net/http"
	"net/http/httptrace"
	"runtime"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// A Transport is an http.RoundTripper that traces every outbound request
// with otelhttp and tracks every response body until it is closed: it drains
// bodies on close so connections are reused, and reports — on the request's
// own span, in a metric and in a log line — every body that leaks, then
// repairs it. Create one with [New] or [NewClient] and share it: it is safe
// for concurrent use, like http.Transport.
type Transport struct {
	cfg      config
	base     http.RoundTripper
	otel     http.RoundTripper
	inst     instruments
	reg      registry
	leaks    leakLog
	logLimit logLimiter

	attrs sync.Pool // *[]attribute.KeyValue scratch for the end of a span

	closeOnce sync.Once
	stop      chan struct{}
	stopped   chan struct{}
}

// New wraps base (nil means [NewHardenedTransport]) in a telltale Transport.
// Outbound spans come from otelhttp; telltale adds body tracking, leak
// detection and repair, connection and timing attributes, slow-upstream
// events and error classification to them.
//
// A Transport built with [WithMaxBodyAge] runs one goroutine; call
// [Transport.Close] to stop it.
func New(base http.RoundTripper, opts ...Option) *Transport {
	cfg := newConfig(opts)
	if base == nil {
		base = NewHardenedTransport()
	}
	t := &Transport{
		cfg:     cfg,
		base:    base,
		inst:    newInstruments(cfg.meterProvider),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	t.reg.limit = int64(cfg.maxTracked)
	t.leaks.limit = recentLeaks
	t.logLimit.perSecond = cfg.logLimit
	t.attrs.New = func() any { s := make([]attribute.KeyValue, 0, 24); return &s }
	t.otel = otelhttp.NewTransport(innerTransport{t},
		otelhttp.WithTracerProvider(cfg.tracerProvider),
		otelhttp.WithMeterProvider(cfg.meterProvider),
		otelhttp.WithPropagators(cfg.propagators),
		otelhttp.WithClientTrace(t.clientTrace),
	)
	if cfg.maxAge > 0 {
		go t.watchAges()
	} else {
		close(t.stopped)
	}
	return t
}

// NewClient returns an *http.Client whose Transport is New(nil, opts...): the
// hardened transport, traced and tracked. The client has no Timeout of its
// own: the backstop ([DefaultTimeout], [WithTimeout]) is enforced as a
// context deadline inside the transport, which, unlike http.Client.Timeout,
// leaves no goroutine behind when a leaked body is repaired.
func NewClient(opts ...Option) *http.Client {
	return &http.Client{Transport: New(nil, opts...)}
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := &record{Context: req.Context(), t: t, start: time.Now(), method: req.Method, url: req.URL}
	rec.npcs = runtime.Callers(2, rec.pcs[:])
	ctx := context.Context(rec)
	if t.cfg.timeout > 0 {
		if _, ok := req.Context().Deadline(); !ok {
			ctx, rec.cancel = context.WithTimeout(rec, t.cfg.timeout)
		}
	}
	resp, err := t.otel.RoundTrip(req.WithContext(ctx))
	if err != nil {
		if rec.cancel != nil {
			rec.cancel()
		}
		return nil, err
	}
	return t.track(rec, resp), nil
}

// clientTrace gives otelhttp the httptrace hooks of the request, embedded in
// its record. Only recorded spans pay for the connection hook.
func (t *Transport) clientTrace(ctx context.Context) *httptrace.ClientTrace {
	rec := recordFrom(ctx)
	if rec == nil {
		return &httptrace.ClientTrace{}
	}
	if trace.SpanFromContext(ctx).IsRecording() {
		rec.trace.GotConn = rec.gotConn
	}
	return &rec.trace
}

// innerTransport sits between otelhttp and the base transport, where the
// client span exists and the base's answer has not been wrapped yet.
type innerTransport struct{ t *Transport }

func (in innerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t := in.t
	rec := recordFrom(r.Context())
	if rec == nil {
		return t.base.RoundTrip(r)
	}
	rec.span = trace.SpanFromContext(r.Context())
	deadline, hasDeadline := r.Context().Deadline()
	if hasDeadline {
		rec.budget = time.Until(deadline)
		rec.hasBudget = true
	}
	recording := rec.span.IsRecording()
	if recording && (r.URL.RawQuery != "" || r.URL.Fragment != "") {
		// otelhttp records the full URL without credentials but with the
		// query: its values must not reach the trace backend either.
		rec.span.SetAttributes(attribute.String("url.full", RedactURL(r.URL)))
	}
	if t.cfg.propagateDeadline && hasDeadline {
		r = r.WithContext(r.Context()) // shallow copy: the request is not ours to change
		r.Header = r.Header.Clone()
		r.Header.Set(TimeoutHeader, FormatTimeout(time.Until(deadline)))
	}

	resp, err := t.base.RoundTrip(r)
	rec.headers = time.Now()
	if err != nil {
		// otelhttp records error.type from the ErrorType method of the
		// classified error, sets the status and ends the span.
		if recording && hasDeadline {
			rec.span.SetAttributes(attribute.Float64(AttrDeadlineBudget, ms(rec.budget)))
		}
		return nil, classify(err, r.Context().Err())
	}
	rec.status = resp.StatusCode
	rec.under = resp.Body
	if ttfb := rec.headers.Sub(rec.start); t.cfg.slowTTFB > 0 && ttfb > t.cfg.slowTTFB {
		t.markSlow(rec, slowTTFB, t.cfg.slowTTFB, ttfb)
	}
	return resp, nil
}

// track hands the application a copy of the response whose body is tracked.
func (t *Transport) track(rec *record, resp *http.Response) *http.Response {
	if rec.under == nil || rec.under == http.NoBody || bodiless(rec.method, resp) {
		if rec.under != nil && rec.under != http.NoBody {
			_ = rec.under.Close() // HTTP/2's own empty body
		}
		rec.state.Store(stateDone)
		t.finish(rec, finishNoBody, 0, nil)
		resp.Body = http.NoBody
		return resp
	}
	b := &body{rec: rec, resp: *resp}
	b.resp.Body = b
	if _, ok := rec.under.(io.ReadWriteCloser); ok && resp.StatusCode == http.StatusSwitchingProtocols {
		rec.upgraded = true
		b.resp.Body = upgradedBody{b}
	}
	t.inst.bodyOpened()
	if !t.reg.add(rec) {
		t.inst.bodyUntracked()
	}
	if s := ScopeFromContext(rec.Context); s != nil {
		s.add(rec)
	}
	b.cleanup = runtime.AddCleanup(b, (*record).unreachable, rec)
	return &b.resp
}

// bodiless reports whether resp cannot have a body, whatever type of empty
// body the base transport returned (HTTP/2 does not use http.NoBody).
func bodiless(method string, resp *http.Response) bool {
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return false
	}
	return method == http.MethodHead || resp.StatusCode == http.StatusNoContent ||
		resp.StatusCode == http.StatusNotModified || resp.ContentLength == 0
}

// CloseIdleConnections closes the base transport's idle connections.
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// Close shuts the Transport down, at the end of a service's life: it stops
// the goroutine started by [WithMaxBodyAge], if any; reports every body still
// open as a leak with reason [LeakOpenAtClose] — ending its span, so that it
// is exported when the tracer provider is shut down next — and closes it
// (unless report-only); and closes idle connections. Call it after the
// server has stopped serving and before shutting down the tracer and meter
// providers. Close is idempotent; the Transport must not be used afterwards.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() {
		close(t.stop)
		<-t.stopped
		var open []*record
		t.reg.each(func(r *record) { open = append(open, r) })
		t.reg.over.mu.Lock()
		for r := t.reg.over.head; r != nil; r = r.next {
			open = append(open, r)
		}
		t.reg.over.mu.Unlock()
		for _, rec := range open {
			t.reportLeak(rec, LeakOpenAtClose)
		}
		t.CloseIdleConnections()
	})
	return nil
}

// watchAges reports bodies open longer than the maximum age.
func (t *Transport) watchAges() {
	defer close(t.stopped)
	every := min(max(t.cfg.maxAge/4, 10*time.Millisecond), time.Second)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case now := <-tick.C:
			for _, rec := range t.reg.olderThan(now.Add(-t.cfg.maxAge)) {
				t.reportLeak(rec, LeakTooOld)
			}
		}
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
