package server

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"

	"github.com/telltale-go/telltale/internal/anomaly"
	"github.com/telltale-go/telltale/vocab"
)

// request is the state of one traced request, made when otelhttp starts
// its server span: telltale's anomaly.Request (what the transport and the
// other middleware find in the request's context), the span as otelhttp
// holds it, and, for a span the head sampler dropped, the few values from
// which the replay writes the attributes otelhttp would have recorded (as
// otelhttp writes them: describe.go). One allocation per request; none
// when nothing records (tracing off, or an unsampled span whose provider
// cannot replay).
type request struct {
	anomaly.Request
	span serverSpan
	t    *Trace

	// Set when the span starts, and, for an unsampled span, by otelhttp's
	// calls.
	start  time.Time
	parent trace.SpanContext // the caller's span, for a replay
	name   string
	code   codes.Code // otelhttp's status
	desc   string
	otel   otelFacts

	// Set on the request's goroutine.
	route     string // the route template, when known
	routeAttr bool   // otelhttp knew the route when the span started: http.route is among its attributes
	status    int    // as otelhttp recorded it
	panicked  bool
	aborted   bool
	err       error  // the handler's error, if the framework has errors
	errMsg    string // the 5xx's error, or the panic, as a sentence: the span's status description

	// Set from any goroutine of the request.
	reported atomic.Bool // the handler reported an anomaly
	ended    atomic.Bool
}

type stateKey struct{}

// Value makes the request the context that carries itself, and its
// anomaly.Request.
func (r *request) Value(key any) any {
	if key == (stateKey{}) {
		return r
	}
	return r.Request.Value(key)
}

func stateFrom(ctx context.Context) *request {
	r, _ := ctx.Value(stateKey{}).(*request)
	return r
}

// tracer is the tracer otelhttp starts server spans with: the provider's,
// making each request's state as its span starts.
type tracer struct {
	embedded.Tracer
	inner trace.Tracer
	t     *Trace
}

func (tr tracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	ctx2, span := tr.inner.Start(ctx, name, opts...)
	sc := span.SpanContext()
	if !sc.IsValid() {
		return ctx2, span // tracing is off
	}
	parent := trace.SpanContextFromContext(ctx)
	var replay trace.Tracer
	// A span the head sampler dropped is replayed if the request turns out
	// anomalous; not a no-op tracer's, which carries the caller's ids.
	if !sc.IsSampled() && !sc.IsRemote() && sc.SpanID() != parent.SpanID() {
		replay = tr.t.replay.Tracer(span.TracerProvider())
	}
	if replay == nil && !span.IsRecording() {
		return ctx2, span // nothing would record what telltale finds
	}
	r := &request{t: tr.t, start: time.Now()}
	r.Init(ctx2, span, r.start, replay)
	r.span = serverSpan{Span: span, r: r}
	if replay != nil {
		r.parent, r.name = parent, name
	}
	return r, &r.span
}

// serverSpan is the server span as otelhttp holds it: its calls go to the
// span when it records, and are kept for a replay when the head sampler
// dropped it; the status code is read either way. End ends the request.
type serverSpan struct {
	trace.Span
	r *request
}

func (s *serverSpan) SetAttributes(kvs ...attribute.KeyValue) {
	for _, a := range kvs {
		switch a.Key {
		case semconv.HTTPResponseStatusCodeKey:
			s.r.status = int(a.Value.AsInt64())
		case semconv.HTTPRequestBodySizeKey:
			s.r.otel.requestBody = a.Value.AsInt64()
		case semconv.HTTPResponseBodySizeKey:
			s.r.otel.responseBody = a.Value.AsInt64()
		}
	}
	if s.Span.IsRecording() {
		s.Span.SetAttributes(kvs...)
	}
}

func (s *serverSpan) SetStatus(code codes.Code, description string) {
	if s.Span.IsRecording() {
		s.Span.SetStatus(code, description)
	}
	s.r.code, s.r.desc = code, description
}

func (s *serverSpan) SetName(name string) {
	if s.Span.IsRecording() {
		s.Span.SetName(name)
	}
	s.r.name = name
}

func (s *serverSpan) End(opts ...trace.SpanEndOption) {
	s.r.end()
	if s.Span.IsRecording() {
		s.Span.End(opts...)
	}
}

// end ends the request, once otelhttp has recorded all it records: the
// answer's anomalies (a 5xx, a panic, a degraded success, a slow request)
// are recorded, and a request kept for a replay is ended — exported now
// if anomalous.
func (r *request) end() {
	now := time.Now()
	r.ended.Store(true)
	if r.route != "" && !r.routeAttr {
		// Learnt after the span started: its name and http.route now.
		name := r.t.names.Name(r.otel.method, routePath(r.route))
		if r.span.Span.IsRecording() {
			r.span.Span.SetName(name)
		}
		r.name = name
		r.SetAttributes(semconv.HTTPRoute(routePath(r.route)))
	}
	status := r.status
	if r.err != nil && status >= 500 {
		r.recordError(r.err)
	}
	switch {
	case r.panicked:
		r.Anomaly(anomaly.KindPanic, "")
	case status >= 500:
		r.Anomaly(anomaly.KindServerError, strconv.Itoa(status))
	case status > 0 && status < 400 && (r.reported.Load() || r.FailedCall()):
		r.SetAttributes(attribute.Bool(vocab.AttrDegraded, true))
		r.MarkAnomalous()
	}
	if threshold := r.t.slowThreshold(r.route); threshold > 0 && now.Sub(r.start) > threshold {
		r.AddEvent(vocab.EventRequestSlow, r.start.Add(threshold),
			attribute.Int64(vocab.AttrRequestSlowThreshold, threshold.Milliseconds()))
		r.Anomaly(anomaly.KindSlow, "")
	}
	r.endStatus()
	if r.Replayable() {
		r.Request.End(r, now)
	}
}

// Describe implements anomaly.Describer: the server span as otelhttp
// would have recorded it.
func (r *request) Describe() (string, trace.SpanContext, []attribute.KeyValue, codes.Code, string) {
	return r.name, r.parent, r.otel.attributes(r.status, r.panicked || r.aborted), r.code, r.desc
}

// routePath is the path of a route template: "/users/{id}" for Go's
// pattern "GET /users/{id}" (or "example.com/users/{id}"), the template
// itself for Echo's "/users/:id".
func routePath(route string) string {
	if i := strings.IndexByte(route, '/'); i > 0 {
		return route[i:]
	}
	return route
}
