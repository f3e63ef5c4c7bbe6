package middleware

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/internal/anomaly"
	"github.com/telltale-go/telltale/vocab"
)

// A recorder records on the request's server span: the span itself when it
// is recording, and, for a request the head sampler did not sample, the
// anomaly.Server that exports it if the request turns out anomalous (a span
// recorded but not sampled has both). The zero recorder records nothing
// (the request is not traced by Trace).
type recorder struct {
	span trace.Span
	srv  *anomaly.Server
}

func recorderOf(ctx context.Context) recorder {
	var r recorder
	span := trace.SpanFromContext(ctx)
	if span.IsRecording() {
		r.span = span
	}
	if !span.SpanContext().IsSampled() {
		r.srv = anomaly.ServerFrom(ctx)
	}
	return r
}

func (r recorder) recording() bool { return r.span != nil || r.srv != nil }

func (r recorder) setAttributes(attrs ...attribute.KeyValue) {
	if r.span != nil {
		r.span.SetAttributes(attrs...)
	}
	if r.srv != nil {
		r.srv.SetAttributes(attrs...)
	}
}

func (r recorder) addEvent(name string, at time.Time, attrs ...attribute.KeyValue) {
	if r.span != nil {
		r.span.AddEvent(name, trace.WithTimestamp(at), trace.WithAttributes(attrs...))
	}
	if r.srv != nil {
		r.srv.AddEvent(name, at, attrs...)
	}
}

// ReportAnomaly tells telltale that the request ctx belongs to went wrong
// in a way only the handler knows — a partial answer, a fallback, a
// degraded result: its server span gets a telltale.anomaly event saying
// why, and, if the head sampler dropped the request, is exported anyway,
// with the rest of its trace, as telltale's own anomalies are (within the
// sampling budget). ctx is the request's context, as the handler has it
// (c.Request().Context()) or any context derived from it; outside a
// request traced by Trace, it does nothing.
func ReportAnomaly(ctx context.Context, why string) {
	rec := recorderOf(ctx)
	rec.addEvent(vocab.EventAnomaly, time.Now(), attribute.String(vocab.AttrAnomalyReason, why))
	rec.anomaly()
}

// anomaly says that the request went wrong: an unsampled request's span is
// then exported when it ends. A sampled one is exported anyway.
func (r recorder) anomaly() {
	if r.srv != nil {
		r.srv.MarkAnomalous()
	}
}
