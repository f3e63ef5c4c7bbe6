package middleware

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/internal/anomaly"
)

// A recorder records on the request's server span: the span itself when it
// is recording, or, for a request the head sampler dropped, the
// anomaly.Server that exports it if the request turns out anomalous. The
// zero recorder records nothing (the request is not traced by Trace).
type recorder struct {
	span trace.Span
	srv  *anomaly.Server
}

func recorderOf(ctx context.Context) recorder {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		return recorder{span: span}
	}
	return recorder{srv: anomaly.ServerFrom(ctx)}
}

func (r recorder) recording() bool { return r.span != nil || r.srv != nil }

func (r recorder) setAttributes(attrs ...attribute.KeyValue) {
	switch {
	case r.span != nil:
		r.span.SetAttributes(attrs...)
	case r.srv != nil:
		r.srv.SetAttributes(attrs...)
	}
}

func (r recorder) addEvent(name string, at time.Time, attrs ...attribute.KeyValue) {
	switch {
	case r.span != nil:
		r.span.AddEvent(name, trace.WithTimestamp(at), trace.WithAttributes(attrs...))
	case r.srv != nil:
		r.srv.AddEvent(name, at, attrs...)
	}
}

// anomaly says that the request went wrong: an unsampled request's span is
// then exported when it ends. A sampled one is exported anyway.
func (r recorder) anomaly() {
	if r.srv != nil {
		r.srv.MarkAnomalous()
	}
}
