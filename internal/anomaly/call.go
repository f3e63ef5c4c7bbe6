package anomaly

import (
	"context"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/internal/redact"
	"github.com/telltale-go/telltale/vocab"
)

// A Call is the client span of one outbound call as it would have been
// exported: what otelhttp recorded on it, what telltale adds when the
// request is sent, and the evidence of how the call ended. The transport
// builds it once, when the call ends, and either writes it to the live
// span or, for a span the head sampler dropped, hands it to the request's
// [Request] (or replays it alone, for a call made outside any request).
// What a healthy call keeps is this value and the attributes otelhttp
// built anyway; nothing is copied.
type Call struct {
	Name   string
	Self   trace.SpanContext
	Parent trace.SpanID // the span it was made under
	Start  time.Time
	End    time.Time

	// What otelhttp recorded: its request and response attributes, in
	// the order it recorded them, and its status.
	OtelRequest     []attribute.KeyValue
	OtelResponse    []attribute.KeyValue
	OtelCode        codes.Code
	OtelDescription string

	// Sent are telltale's attributes of the request as sent.
	Sent Sent

	// The evidence, for an anomalous call: attributes, events and the
	// status telltale sets when the call ends.
	Evidence    []attribute.KeyValue
	Events      []Event
	Code        codes.Code
	Description string

	// Anomalies are the call's anomalies (Route left empty: the request
	// fills it in); none for a healthy call.
	Anomalies []Signature
	// Failed tells a call that failed or was answered 5xx: a request that
	// still answers 2xx is degraded.
	Failed bool
}

// Anomalous reports whether the call went wrong.
func (c *Call) Anomalous() bool { return len(c.Anomalies) > 0 }

// Sent are the attributes telltale records on a client span when the
// request is sent, kept as values: the URL, to record without credentials
// or query values when otelhttp's url.full shows them, the time left
// before the deadline, the upstream's name.
type Sent struct {
	URL          *url.URL // nil when otelhttp's url.full needs no redaction
	RemainingMS  int64
	HasRemaining bool
	PeerService  string
}

// Append appends the attributes to attrs.
func (s Sent) Append(attrs []attribute.KeyValue) []attribute.KeyValue {
	if s.URL != nil {
		attrs = append(attrs, semconv.URLFull(redact.URL(s.URL)))
	}
	if s.HasRemaining {
		attrs = append(attrs, attribute.Int64(vocab.AttrDeadlineRemaining, s.RemainingMS))
	}
	if s.PeerService != "" {
		attrs = append(attrs, attribute.String(vocab.AttrPeerService, s.PeerService))
	}
	return attrs
}

// ReplayCall exports the span of a call made outside any request, on its
// own decision: in base (the call's context, for its baggage), under
// parent, its span's own parent.
func ReplayCall(tracer trace.Tracer, base context.Context, parent trace.SpanContext, c *Call) Outcome {
	return c.replay(tracer, context.WithoutCancel(base), NewDecision(c.Anomalies...), parent)
}

// replay exports the call's span under parent with tracer and the
// decision it shares, as it would have been exported when sampled, marked
// replayed.
func (c *Call) replay(tracer trace.Tracer, base context.Context, d *Decision, parent trace.SpanContext) Outcome {
	span, o := Start(tracer, base, d, parent, c.Self, c.Name,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(c.Start))
	if span == nil {
		return o
	}
	span.SetAttributes(c.OtelRequest...)
	var buf [3]attribute.KeyValue
	span.SetAttributes(c.Sent.Append(buf[:0])...)
	span.SetAttributes(c.OtelResponse...)
	span.SetAttributes(c.Evidence...)
	span.SetAttributes(attribute.Bool(vocab.AttrReplayed, true))
	if c.Parent.IsValid() && c.Parent != parent.SpanID() {
		// Made under a span that is not replayed — the application's own,
		// which only its tracer could replay — and placed under parent:
		// it says which.
		span.SetAttributes(attribute.String(vocab.AttrReplayParent, c.Parent.String()))
	}
	addEvents(span, c.Events)
	if c.OtelCode != codes.Unset {
		span.SetStatus(c.OtelCode, c.OtelDescription)
	}
	if c.Code != codes.Unset {
		span.SetStatus(c.Code, c.Description)
	}
	span.End(trace.WithTimestamp(c.End))
	return o
}
