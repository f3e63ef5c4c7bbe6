package transport

import (
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/telltale-go/telltale/internal/anomaly"
	"github.com/telltale-go/telltale/vocab"
)

// slowness says which slow thresholds (WithSlowThreshold) passed while a
// call was still waiting: for the response headers (ttfb), or for the
// whole exchange (total). It is found when the call ends, however it ends
// — a response, an error, a timeout, a cancellation, a leak — without a
// timer per call: a call still waiting when a threshold passed is one
// whose wait ended after it.
type slowness struct{ ttfb, total bool }

func (t *Transport) slowness(rec *record, e *ending) slowness {
	var s slowness
	if d := t.cfg.slowTTFB; d > 0 {
		s.ttfb = rec.headersOrEnd(e).Sub(rec.start) > d
	}
	if d := t.cfg.slowTotal; d > 0 && !rec.upgraded && !longLived(rec.req) {
		// A stream or an upgraded connection is meant to stay open.
		s.total = e.at.Sub(rec.start) > d
	}
	return s
}

// headersOrEnd is when the wait for the response headers ended: when they
// came, or when the call ended without them.
func (rec *record) headersOrEnd(e *ending) time.Time {
	if !rec.headers.IsZero() {
		return rec.headers
	}
	return e.at
}

// slowEvents are the events of the thresholds that passed, each stamped
// when it passed, the call's start plus the threshold, saying what the
// call was waiting for then and how long that wait lasted in the end.
func (t *Transport) slowEvents(rec *record, e *ending, s slowness) []anomaly.Event {
	if !s.ttfb && !s.total {
		return nil
	}
	evs := make([]anomaly.Event, 0, 2)
	if s.ttfb {
		at := rec.start.Add(t.cfg.slowTTFB)
		evs = append(evs, slowEvent(vocab.SlowTTFB, at, t.cfg.slowTTFB, rec.headersOrEnd(e).Sub(rec.start), rec.waitingAt(at)))
	}
	if s.total {
		at := rec.start.Add(t.cfg.slowTotal)
		evs = append(evs, slowEvent(vocab.SlowTotal, at, t.cfg.slowTotal, e.at.Sub(rec.start), rec.waitingAt(at)))
	}
	return evs
}

func slowEvent(kind string, at time.Time, threshold, observed time.Duration, waitingFor string) anomaly.Event {
	return anomaly.Event{Name: vocab.EventUpstreamSlow, At: at, Attrs: []attribute.KeyValue{
		attribute.String(vocab.AttrSlowKind, kind),
		attribute.Int64(vocab.AttrSlowThreshold, threshold.Milliseconds()),
		attribute.Int64(vocab.AttrSlowObserved, observed.Milliseconds()),
		attribute.String(vocab.AttrSlowWaitingFor, waitingFor),
	}}
}

// waitingAt says what the call was waiting for at at: its connection
// (when the hardened dialer was dialing one for it then), the response
// headers, or the body. A connection net/http dialed for the call but gave
// to another, or a pooled one it got instead, can make it name the wrong
// wait of the first two; the body is always right.
func (rec *record) waitingAt(at time.Time) string {
	switch {
	case !rec.headers.IsZero() && !rec.headers.After(at):
		return vocab.WaitingForBody
	case rec.dialingAt(at):
		return vocab.WaitingForConnection
	}
	return vocab.WaitingForHeaders
}
