package anomaly

import (
	"context"
	"encoding/binary"
	"math/rand/v2"

	"go.opentelemetry.io/otel/trace"
)

// A Replay marks the context given to Tracer.Start for a replayed span. The
// SDK hands that same context to the ID generator and to the sampler.
type Replay struct {
	context.Context // carries the parent span context, if any, and the request's baggage

	traceID  trace.TraceID
	spanID   trace.SpanID
	decision *Decision // whether the request's spans are exported: decided once
	probe    bool      // only asks whether the provider can replay

	// Set during Tracer.Start, on the caller's goroutine.
	idsGiven bool // an ID generator gave the span the ids it asked for
	seen     bool // a telltale sampler decided
}

// FromContext returns the Replay marking ctx, or nil for a span that is not
// a replay. The SDK hands the ID generator and the sampler the very context
// given to Tracer.Start, which for a replay is the Replay itself: a type
// assertion, cheap enough for every span started, is all it takes.
func FromContext(ctx context.Context) *Replay {
	r, _ := ctx.(*Replay)
	return r
}

// TraceID is the trace id the replayed span must have.
func (r *Replay) TraceID() trace.TraceID { return r.traceID }

// IDs returns the trace and span ids the replayed span must have, and
// records that an ID generator gave them.
func (r *Replay) IDs() (trace.TraceID, trace.SpanID) {
	r.idsGiven = true
	return r.traceID, r.spanID
}

// IDsGiven reports whether an ID generator gave the span its ids.
func (r *Replay) IDsGiven() bool { return r.idsGiven }

// Probe reports whether the span only asks whether the provider can
// replay: a sampler drops it without counting it.
func (r *Replay) Probe() bool { return r.probe }

// Decision is the decision the replayed span shares with every span of its
// request.
func (r *Replay) Decision() *Decision { return r.decision }

// Decided records that a telltale sampler decided whether the span is
// exported.
func (r *Replay) Decided() { r.seen = true }

// RandomSpanID returns a valid span id, at random.
func RandomSpanID() trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		binary.NativeEndian.PutUint64(sid[:], rand.Uint64())
	}
	return sid
}

// RandomTraceID returns a valid trace id, at random.
func RandomTraceID() trace.TraceID {
	var id trace.TraceID
	for !id.IsValid() {
		binary.NativeEndian.PutUint64(id[:8], rand.Uint64())
		binary.NativeEndian.PutUint64(id[8:], rand.Uint64())
	}
	return id
}

// Outcome says what became of a replay.
type Outcome int

const (
	// Pending: nothing was exported yet.
	Pending Outcome = iota
	// Recorded: the span is recording and will be exported when ended.
	Recorded
	// Refused: a telltale sampler refused it (over its budget).
	Refused
	// NoSampler: the provider has no telltale sampler (or no telltale ID
	// generator), so the spans of unsampled requests cannot be exported.
	NoSampler
)

// Start starts a span that replays one the head sampler dropped: the span
// self, child of parent (invalid for a root span), named name, in base (a
// context for the span processors — the request's, without its
// cancellation; nil for none), exported or not as d decides. opts must
// carry the span's kind and start time. The span is returned only when it
// is recorded; the caller sets its attributes and ends it with its real
// end time.
func Start(tracer trace.Tracer, base context.Context, d *Decision, parent, self trace.SpanContext, name string, opts ...trace.SpanStartOption) (trace.Span, Outcome) {
	if base == nil {
		base = context.Background()
	}
	if d == nil {
		d = new(Decision)
	}
	// base may carry a span of its own — the request's unsampled server
	// span, when the request's context is the base — so the parent is
	// always set: to the caller's span, or to none, for a root, which
	// otherwise would come out a child of itself.
	base = trace.ContextWithSpanContext(base, parent)
	r := &Replay{Context: base, traceID: self.TraceID(), spanID: self.SpanID(), decision: d}
	_, span := tracer.Start(r, name, opts...)
	switch {
	case !r.seen:
		// The provider's sampler is not telltale's. Whatever it
		// decided, the span is not ended, so nothing is exported.
		return nil, NoSampler
	case !span.IsRecording():
		return nil, Refused
	}
	return span, Recorded
}

// probeTraceID is the trace id of probe spans: the highest, which ratio
// samplers (TraceIDRatioBased below 1) never record.
var probeTraceID = trace.TraceID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// probe reports whether tracer's provider replays: whether its sampler is
// telltale's and its ID generator gives replayed spans their ids. The
// probe span is never recorded, nor counted.
func probe(tracer trace.Tracer) bool {
	r := &Replay{Context: context.Background(), traceID: probeTraceID, spanID: RandomSpanID(), decision: new(Decision), probe: true}
	// Not ended, so never exported, whatever a sampler that is not
	// telltale's decided.
	_, _ = tracer.Start(r, "telltale.probe")
	return r.seen && r.idsGiven
}
