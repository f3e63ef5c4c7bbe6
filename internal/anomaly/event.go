package anomaly

import (
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// The limits of what a request keeps for a replay: those of the SDK's span
// by default (sdktrace.NewSpanLimits), so that a replayed span holds what
// a sampled one would.
const (
	// MaxEvents is how many events a kept span holds; past it, the oldest
	// go, as in the SDK, and are counted.
	MaxEvents = 128
	// MaxAttributes is how many attributes a kept server span holds; past
	// it, new ones are dropped and counted.
	MaxAttributes = 128
	// MaxCalls is how many client spans a request keeps for a replay; past
	// it, healthy calls make way for anomalous ones, and the calls left out
	// are counted on the server span. Calls that end after the request was
	// exported (its detached work) are replayed on their own within the
	// same bound, and as many again for anomalous ones.
	MaxCalls = 128
)

// An Event is a span event with its time.
type Event struct {
	Name  string
	At    time.Time
	Attrs []attribute.KeyValue
}

// events keeps the newest MaxEvents events, and counts the others.
type events struct {
	ring    []Event
	next    int // where the next event goes once the ring is full
	dropped int
}

func (e *events) add(ev Event) {
	if len(e.ring) < MaxEvents {
		e.ring = append(e.ring, ev)
		return
	}
	e.ring[e.next] = ev
	e.next = (e.next + 1) % MaxEvents
	e.dropped++
}

// each calls fn for each event, oldest first.
func (e *events) each(fn func(Event)) {
	for _, ev := range e.ring[e.next:] {
		fn(ev)
	}
	for _, ev := range e.ring[:e.next] {
		fn(ev)
	}
}

// addTo adds the events to span, each at its time.
func addEvents(span trace.Span, evs []Event) {
	for _, ev := range evs {
		span.AddEvent(ev.Name, trace.WithTimestamp(ev.At), trace.WithAttributes(ev.Attrs...))
	}
}
