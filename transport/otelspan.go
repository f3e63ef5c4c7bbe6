package transport

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
)

// tracerProvider is the provider otelhttp is given: the configured one,
// whose tracer hands otelhttp, for a request sent through
// Transport.RoundTrip, the client span wrapped in the request's record
// (otelSpan), in the same allocation. otelhttp's span then records what
// telltale needs to know of it: the error.type telltale classified, what
// otelhttp recorded on a span the head sampler dropped, the moment otelhttp
// ends the span of a failed call. The context otelhttp propagates carries
// the span itself, unwrapped.
type tracerProvider struct {
	embedded.TracerProvider
	tp trace.TracerProvider
}

func (p tracerProvider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return tracer{inner: p.tp.Tracer(name, opts...)}
}

type tracer struct {
	embedded.Tracer
	inner trace.Tracer
}

func (t tracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	ctx, span := t.inner.Start(ctx, name, opts...)
	rec := recordFrom(ctx)
	if rec == nil {
		return ctx, span
	}
	rec.otel = otelSpan{Span: span, rec: rec}
	return ctx, &rec.otel
}

// otelSpan is the client span as otelhttp holds it.
type otelSpan struct {
	trace.Span
	rec *record
}

// SetAttributes records otelhttp's attributes: on a recording span, with
// telltale's error.type in place of the Go type otelhttp names (the error
// the caller gets, and otelhttp's metrics, stay net/http's own); for a
// span the head sampler dropped, kept as otelhttp built them, to be
// replayed if the call turns out anomalous.
func (s *otelSpan) SetAttributes(kvs ...attribute.KeyValue) {
	rec := s.rec
	if kind := rec.errKind; kind != "" {
		for i := range kvs {
			if kvs[i].Key == semconv.ErrorTypeKey {
				kvs[i] = semconv.ErrorTypeKey.String(kind)
			}
		}
	}
	if s.Span.IsRecording() {
		s.Span.SetAttributes(kvs...)
		return
	}
	switch {
	case rec.otelRequest == nil:
		rec.otelRequest = kvs
	case rec.otelResponse == nil:
		rec.otelResponse = kvs
	default:
		rec.otelResponse = append(rec.otelResponse[:len(rec.otelResponse):len(rec.otelResponse)], kvs...)
	}
}

// SetStatus records otelhttp's status, its description without the query
// values of the request's URL.
func (s *otelSpan) SetStatus(code codes.Code, description string) {
	if description != "" {
		description = redactedMessage(s.rec, description)
	}
	if s.Span.IsRecording() {
		s.Span.SetStatus(code, description)
		return
	}
	s.rec.otelCode, s.rec.otelDescription = code, description
}

// End is called by otelhttp for a call that failed: the evidence is
// written before the span ends.
func (s *otelSpan) End(opts ...trace.SpanEndOption) {
	s.rec.t.callFailed(s.rec, s.rec.err)
	s.Span.End(opts...)
}
