package transport

import (
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/internal/anomaly"
	"github.com/telltale-go/telltale/internal/redact"
	"github.com/telltale-go/telltale/vocab"
)

// client exports the span of an unsampled call that went wrong, with the
// ids, times, attributes and events it would have had if sampled, under
// the server span of its request.
func (t *Transport) replayClient(rec *record, e *ending) {
	self := rec.span.SpanContext()
	parent := trace.SpanContextFromContext(rec.Context)
	if srv := anomaly.ServerFrom(rec.Context); srv != nil && srv.SpanContext().TraceID() == self.TraceID() {
		// The request's own span, which the server middleware exports
		// too, rather than a span of the application's in between that
		// nothing exports. (A call started in a trace of its own, with
		// trace.WithNewRoot, keeps its own parent.)
		parent = srv.SpanContext()
		srv.Anomaly()
	}
	span, outcome := anomaly.Start(t.replay.Tracer(), parent, self, "HTTP "+rec.req.Method,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(rec.start))
	if span == nil {
		t.replay.Saw(outcome)
		return
	}
	span.SetAttributes(clientAttributes(rec)...)
	if rec.hasBudget {
		span.SetAttributes(attribute.Float64(vocab.AttrDeadlineRemaining, ms(rec.budget)))
	}
	if rec.status >= http.StatusBadRequest {
		span.SetStatus(codes.Error, "")
	}
	t.writeEvidence(span, rec, e)
	span.End(trace.WithTimestamp(e.at))
}

// clientAttributes are the attributes otelhttp records on a client span,
// and the mark of a replayed span.
func clientAttributes(rec *record) []attribute.KeyValue {
	req := rec.req
	attrs := make([]attribute.KeyValue, 0, 10)
	attrs = append(attrs, anomaly.MethodAttributes(req.Method)...)
	if req.URL != nil {
		attrs = append(attrs, semconv.URLFull(redact.URL(req.URL)))
		host, port := req.URL.Hostname(), req.URL.Port()
		attrs = append(attrs, semconv.ServerAddress(host))
		if p, err := strconv.Atoi(port); err == nil && anomaly.NonDefaultPort(req.URL.Scheme, p) {
			attrs = append(attrs, semconv.ServerPort(p))
		}
	}
	if ua := req.UserAgent(); ua != "" {
		attrs = append(attrs, semconv.UserAgentOriginal(ua))
	}
	proto := req.Proto
	if rec.orig != nil {
		proto = rec.orig.Proto
	}
	if v := anomaly.ProtocolVersion(proto); v != "" {
		attrs = append(attrs, semconv.NetworkProtocolVersion(v))
	}
	if rec.status > 0 {
		attrs = append(attrs, semconv.HTTPResponseStatusCode(rec.status))
		if rec.status >= http.StatusBadRequest {
			attrs = append(attrs, semconv.ErrorTypeKey.String(strconv.Itoa(rec.status)))
		}
	}
	return append(attrs, attribute.Bool(vocab.AttrReplayed, true))
}
