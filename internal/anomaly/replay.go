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
	context.Context // carries the parent span context, if any

	traceID trace.TraceID
	spanID  trace.SpanID

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

// Decided records that a telltale sampler decided whether the span is
// exported.
func (r *Replay) Decided() { r.seen = true }

// NewSpanContext returns the identity of a span telltale adds to the trace
// of an unsampled request after the fact (an orphaned goroutine's): a new
// span id in that trace.
func NewSpanContext(traceID trace.TraceID) trace.SpanContext {
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: RandomSpanID()})
}

// RandomSpanID returns a valid span id, at random.
func RandomSpanID() trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		binary.NativeEndian.PutUint64(sid[:], rand.Uint64())
	}
	return sid
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
	// NoSampler: no telltale sampler is installed, so the spans of
	// unsampled requests cannot be exported.
	NoSampler
)

// Start starts a span that replays one the head sampler dropped: the span
// self, child of parent (invalid for a root span), named name. opts must
// carry the span's kind and start time. The span is returned only when it
// is recorded; the caller sets its attributes and ends it with its real end
// time.
func Start(tracer trace.Tracer, parent, self trace.SpanContext, name string, opts ...trace.SpanStartOption) (trace.Span, Outcome) {
	ctx := context.Background()
	if parent.IsValid() {
		ctx = trace.ContextWithSpanContext(ctx, parent)
	}
	r := &Replay{Context: ctx, traceID: self.TraceID(), spanID: self.SpanID()}
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
