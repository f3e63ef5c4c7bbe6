package transport

import (
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.39.0"
)

// How a body ended, as recorded in [AttrBodyEnd].
type finishKind string

const (
	finishEOF           finishKind = "eof"
	finishClosedEarly   finishKind = "closed"
	finishClosedDrained finishKind = "closed_drained"
	finishReadError     finishKind = "read_error"
	finishNoBody        finishKind = "no_body"
	finishLeaked        finishKind = "leaked"
)

// finish does the accounting of a body that ended normally: the caller won
// the state transition, so this runs once per body.
func (t *Transport) finish(rec *record, how finishKind, drained int64, readErr error) {
	now := time.Now()
	if how != finishNoBody {
		t.reg.remove(rec)
		t.inst.bodyEnded()
	}
	if drained > 0 {
		t.inst.bodyDrained(drained)
	}
	if rec.cancel != nil {
		rec.cancel()
	}
	span := rec.span
	if span == nil || !span.IsRecording() {
		return
	}
	attrs := t.endAttrs(rec, how, drained, now)
	if readErr != nil {
		err := classify(readErr, rec.Context.Err())
		*attrs = append(*attrs, semconv.ErrorType(err))
		span.SetStatus(codes.Error, err.Error())
	}
	span.SetAttributes(*attrs...)
	t.putAttrs(attrs)
	if total := now.Sub(rec.start); t.cfg.slowTotal > 0 && total > t.cfg.slowTotal {
		t.markSlow(rec, slowTotal, t.cfg.slowTotal, total)
	}
	span.End()
}

// endAttrs collects what telltale records on the span when the body ends,
// in a pooled slice: the span copies it.
func (t *Transport) endAttrs(rec *record, how finishKind, drained int64, now time.Time) *[]attribute.KeyValue {
	attrs := t.attrs.Get().(*[]attribute.KeyValue)
	a := (*attrs)[:0]
	eof := how == finishEOF || how == finishClosedDrained || how == finishNoBody
	a = append(a,
		attribute.String(AttrBodyEnd, string(how)),
		attribute.Int64(AttrBodyReadBytes, rec.bytesRead.Load()),
		attribute.Int64(AttrBodyDrainedBytes, drained),
		attribute.Bool(AttrBodyEOF, eof),
		attribute.Float64(AttrTTFB, ms(rec.headers.Sub(rec.start))),
		attribute.Float64(AttrBodyOpen, ms(now.Sub(rec.headers))),
	)
	if rec.hasBudget {
		a = append(a, attribute.Float64(AttrDeadlineBudget, ms(rec.budget)))
	}
	if c := rec.conn; c.seen {
		a = append(a, attribute.Bool(AttrConnReused, c.reused), attribute.Bool(AttrConnWasIdle, c.wasIdle))
		if c.wasIdle {
			a = append(a, attribute.Float64(AttrConnIdle, ms(c.idle)))
		}
		if c.measured {
			if c.timings.dns > 0 {
				a = append(a, attribute.Float64(AttrConnDNS, ms(c.timings.dns)))
			}
			a = append(a, attribute.Float64(AttrConnConnect, ms(c.timings.connect)))
			if c.timings.tls > 0 {
				a = append(a, attribute.Float64(AttrConnTLS, ms(c.timings.tls)))
			}
		}
	}
	*attrs = a
	return attrs
}

func (t *Transport) putAttrs(attrs *[]attribute.KeyValue) {
	clear(*attrs)
	*attrs = (*attrs)[:0]
	t.attrs.Put(attrs)
}
