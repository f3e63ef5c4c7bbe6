package transport

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/vocab"
)

// checkTTFB marks a call whose response headers came after the slow
// threshold (WithSlowThreshold), and counts it.
func (t *Transport) checkTTFB(rec *record) {
	if t.cfg.slowTTFB > 0 && rec.headers.Sub(rec.start) > t.cfg.slowTTFB {
		rec.slowTTFB = true
		t.inst.upstreamSlow(vocab.SlowTTFB, rec.hostname())
	}
}

// checkTotal marks a call whose whole exchange, until its body ended, took
// longer than the slow threshold, and counts it.
func (t *Transport) checkTotal(rec *record, e *ending) {
	if total := e.at.Sub(rec.start); t.cfg.slowTotal > 0 && total > t.cfg.slowTotal {
		e.slowTotal = total
		t.inst.upstreamSlow(vocab.SlowTotal, rec.hostname())
	}
}

// addSlowEvents records a slow call's events, each at the time the
// threshold was seen crossed.
func (t *Transport) addSlowEvents(span trace.Span, rec *record, e *ending) {
	if rec.slowTTFB {
		span.AddEvent(vocab.EventUpstreamSlow, trace.WithTimestamp(rec.headers), trace.WithAttributes(
			attribute.String(vocab.AttrSlowKind, vocab.SlowTTFB),
			attribute.Float64(vocab.AttrSlowThreshold, ms(t.cfg.slowTTFB)),
			attribute.Float64(vocab.AttrSlowObserved, ms(rec.headers.Sub(rec.start))),
		))
	}
	if e.slowTotal > 0 {
		span.AddEvent(vocab.EventUpstreamSlow, trace.WithTimestamp(e.at), trace.WithAttributes(
			attribute.String(vocab.AttrSlowKind, vocab.SlowTotal),
			attribute.Float64(vocab.AttrSlowThreshold, ms(t.cfg.slowTotal)),
			attribute.Float64(vocab.AttrSlowObserved, ms(e.slowTotal)),
		))
	}
}
