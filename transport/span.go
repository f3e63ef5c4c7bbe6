package transport

import (
	"fmt"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/internal/errkind"
	"github.com/telltale-go/telltale/internal/redact"
	"github.com/telltale-go/telltale/vocab"
)

// How a body ended, as recorded in vocab.AttrBodyEnd.
type finishKind string

const (
	finishEOF           finishKind = vocab.BodyEndEOF
	finishClosedEarly   finishKind = vocab.BodyEndClosed
	finishClosedDrained finishKind = vocab.BodyEndClosedDrained
	finishReadError     finishKind = vocab.BodyEndReadError
	finishLeaked        finishKind = vocab.BodyEndLeaked
	finishNoBody        finishKind = "no_body" // a response without a body to track: not recorded
	finishFailed        finishKind = "failed"  // no response, the call failed: not recorded
)

// An ending is how a call ended, for its span.
type ending struct {
	how       finishKind
	at        time.Time
	drained   int64
	err       error         // the call's or the body's error
	errKind   string        // its error.type, when telltale classifies it
	slowTotal time.Duration // the whole exchange, when past the slow threshold
	leak      *Leak
}

// anomalous reports whether the call went wrong in a way its span must
// show with its evidence, and which must reach the trace backend even if
// the head sampler dropped the request.
func (e *ending) anomalous(rec *record) bool {
	return e.leak != nil || e.err != nil || rec.slowTTFB || e.slowTotal > 0 || rec.status >= http.StatusInternalServerError
}

// recordSent records on a recording span what is known when the request
// is sent: the URL without query values (otelhttp records them), the
// deadline budget.
func (t *Transport) recordSent(rec *record) {
	var buf [2]attribute.KeyValue
	attrs := buf[:0]
	if u := rec.req.URL; redact.NeedsRedaction(u) {
		attrs = append(attrs, semconv.URLFull(redact.URL(u)))
	}
	if rec.hasBudget {
		attrs = append(attrs, attribute.Float64(vocab.AttrDeadlineRemaining, ms(rec.budget)))
	}
	rec.span.SetAttributes(attrs...)
}

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
	rec.release()
	e := ending{how: how, at: now, drained: drained, err: readErr}
	if readErr != nil && (rec.recording || rec.replayable) { // only evidence uses it
		e.errKind = errkind.Of(readErr, rec.Context.Err())
	}
	t.checkTotal(rec, &e)
	t.endSpan(rec, &e)
}

// callFailed ends the span of a call that got no response. otelhttp has
// recorded the error on a recording span and ended it; an unsampled one is
// replayed.
func (t *Transport) callFailed(rec *record, err error) {
	if !rec.replayable { // set, with the time of the answer, once the base transport was called
		return
	}
	t.endSpan(rec, &ending{how: finishFailed, at: rec.headers, err: err, errKind: rec.errKind})
}

// endSpan ends the call's span: a healthy call's span as otelhttp made it,
// an anomalous one with its evidence. The span of an unsampled request is
// exported only if the call was anomalous.
func (t *Transport) endSpan(rec *record, e *ending) {
	span := rec.span
	if span == nil {
		return
	}
	anomalous := (rec.recording || rec.replayable) && e.anomalous(rec)
	if rec.recording && e.how != finishFailed { // otelhttp ended a failed call's span
		if anomalous {
			t.writeEvidence(span, rec, e)
		}
		span.End() // e.at is now: the SDK's clock says the same, without an option to allocate
	}
	if rec.replayable && anomalous {
		t.replayClient(rec, e)
	}
}

// writeEvidence records on span what went wrong and everything that helps
// to tell why: how the body was consumed and ended, the times, the
// connection, the slow and leak events, the error.
func (t *Transport) writeEvidence(span trace.Span, rec *record, e *ending) {
	var buf [12]attribute.KeyValue
	attrs := buf[:0]
	if e.how != finishFailed && e.how != finishNoBody {
		attrs = append(attrs,
			attribute.String(vocab.AttrBodyEnd, string(e.how)),
			attribute.Int64(vocab.AttrBodyReadBytes, rec.bytesRead.Load()),
			attribute.Float64(vocab.AttrBodyOpen, ms(e.at.Sub(rec.headers))),
		)
		if e.drained > 0 {
			attrs = append(attrs, attribute.Int64(vocab.AttrBodyDrainedBytes, e.drained))
		}
	}
	if !rec.headers.IsZero() && e.how != finishFailed {
		attrs = append(attrs, attribute.Float64(vocab.AttrTTFB, ms(rec.headers.Sub(rec.start))))
	}
	attrs = appendDial(attrs, rec)
	switch {
	case e.leak != nil:
		attrs = append(attrs, semconv.ErrorTypeKey.String(vocab.ErrorBodyLeaked))
	case e.errKind != "":
		attrs = append(attrs, semconv.ErrorTypeKey.String(e.errKind))
	case e.err != nil:
		attrs = append(attrs, semconv.ErrorType(e.err))
	}
	span.SetAttributes(attrs...)
	t.addSlowEvents(span, rec, e)
	switch {
	case e.leak != nil:
		span.AddEvent(vocab.EventBodyLeaked, trace.WithTimestamp(e.leak.At), trace.WithAttributes(e.leak.Attributes()...))
		span.SetStatus(codes.Error, fmt.Sprintf("response body leaked (%s): opened at %s and never closed", e.leak.Reason, e.leak.CallSite))
	case e.err != nil:
		span.SetStatus(codes.Error, redactedMessage(rec, e.err))
	}
}

// redactedMessage is err's text without the query values of the request's
// URL, which net/http's errors quote.
func redactedMessage(rec *record, err error) string {
	if rec.req.URL == nil {
		return err.Error()
	}
	return redact.Message(err.Error(), rec.req.URL.String())
}
