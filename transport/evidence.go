package transport

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/internal/anomaly"
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

// An ending is how a call ended.
type ending struct {
	how     finishKind
	at      time.Time
	drained int64
	err     error  // the call's or the body's error
	errKind string // its error.type, when telltale classifies it
	leak    *Leak
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
	if readErr != nil && rec.traced() { // only evidence uses it
		e.errKind = errkind.Of(readErr, rec.Context.Err())
	}
	t.endCall(rec, &e, true)
}

// callFailed ends a call that got no response, once: from otelhttp's End
// of its span, or, should otelhttp fail on its own, from RoundTrip.
func (t *Transport) callFailed(rec *record, err error) {
	at := rec.failedAt
	if at.IsZero() {
		at = time.Now()
	}
	t.endCall(rec, &ending{how: finishFailed, at: at, err: err, errKind: rec.errKind}, false)
}

// endCall ends the call, once: it builds what the call proved (an
// anomaly.Call), writes it to the live span (and ends the span, unless
// otelhttp is ending it) or hands it to the inbound request it was made
// for, or replays it on its own if it went wrong; counts a slow call; and
// logs a leak, saying whether its trace is in the trace backend.
func (t *Transport) endCall(rec *record, e *ending, endSpan bool) {
	if !rec.ended.CompareAndSwap(false, true) {
		return
	}
	slow := t.slowness(rec, e)
	if slow.ttfb {
		t.inst.upstreamSlow(vocab.SlowTTFB, rec.hostname())
	}
	if slow.total {
		t.inst.upstreamSlow(vocab.SlowTotal, rec.hostname())
	}
	if !rec.traced() {
		if e.leak != nil {
			t.warnings.leaked(*e.leak, t.cfg.name, false)
		}
		return
	}
	c := t.buildCall(rec, e, slow)
	if rec.recording {
		writeEvidence(rec.span, &c)
		if endSpan {
			rec.span.End() // e.at is now: the SDK's clock says the same, without an option to allocate
		}
	}
	log := func(bool) {}
	if e.leak != nil {
		leak := *e.leak
		log = func(inBackend bool) { t.warnings.leaked(leak, t.cfg.name, inBackend) }
	}
	// The request keeps the call for its replay when its span is its own
	// (not a no-op tracer's, which is its parent's) and nothing exports
	// it live: a span another provider sampled is exported as it is; one
	// only recorded (RecordOnly) is not.
	keep := rec.ownSpan && !rec.span.SpanContext().IsSampled()
	kept := false
	if rec.request != nil {
		// What it tells the request: a failure, an anomaly; and the call.
		kept = rec.request.CallEnded(&c, keep)
	}
	switch {
	case rec.request != nil && rec.request.Replayable() && keep:
		switch {
		case e.leak == nil:
		case kept:
			rec.request.DeferLog(func(inBackend bool) {
				if inBackend { // a refusal is summarised by the sampler, per kind of anomaly
					log(true)
				}
			})
		default:
			log(false) // past the request's bound: its span is not exported
		}
	case rec.replay != nil && c.Anomalous():
		parent := trace.SpanContextFromContext(rec.Context)
		if anomaly.ReplayCall(rec.replay, rec.Context, parent, &c) == anomaly.Recorded {
			log(true)
		}
	case rec.recording:
		log(rec.span.SpanContext().IsSampled())
	default:
		log(false)
	}
}

// buildCall builds what the call proved, once: for a healthy call, its
// identity and what otelhttp recorded; for an anomalous one, the evidence
// too — how the body was consumed and ended, the times, the connection,
// the slow and leak events, the error — when something records it.
func (t *Transport) buildCall(rec *record, e *ending, slow slowness) anomaly.Call {
	c := anomaly.Call{
		Name:            rec.name,
		Self:            rec.span.SpanContext(),
		Parent:          rec.parentID,
		Start:           rec.start,
		End:             e.at,
		OtelRequest:     rec.otelRequest,
		OtelResponse:    rec.otelResponse,
		OtelCode:        rec.otelCode,
		OtelDescription: rec.otelDescription,
		Sent:            rec.sentAttributes(),
	}
	failed := e.leak == nil && e.err != nil && e.errKind != vocab.ErrorCanceled || rec.status >= http.StatusInternalServerError
	c.Failed = failed
	if e.leak == nil && !failed && !slow.ttfb && !slow.total {
		return c // healthy; a call its caller canceled on purpose is too
	}
	var sigs [3]anomaly.Signature
	c.Anomalies = sigs[:0]
	if e.leak != nil {
		c.Anomalies = append(c.Anomalies, anomaly.Signature{Kind: anomaly.KindLeak, Site: e.leak.CallSite.short()})
	}
	if failed {
		c.Anomalies = append(c.Anomalies, anomaly.Signature{Kind: anomaly.KindUpstreamFailed, Site: rec.upstream()})
	}
	if slow.ttfb || slow.total {
		c.Anomalies = append(c.Anomalies, anomaly.Signature{Kind: anomaly.KindUpstreamSlow, Site: rec.upstream()})
	}
	c.Anomalies = append([]anomaly.Signature(nil), c.Anomalies...)
	if !rec.recording && rec.replay == nil {
		return c // only the request's flags need it
	}
	c.Evidence = evidenceAttributes(rec, e)
	c.Events = t.slowEvents(rec, e, slow)
	switch {
	case e.leak != nil:
		c.Events = append(c.Events, anomaly.Event{Name: vocab.EventBodyLeaked, At: e.leak.At, Attrs: e.leak.Attributes()})
		c.Code = codes.Error
		c.Description = fmt.Sprintf("response body leaked (%s): opened at %s and never closed", e.leak.Reason, e.leak.CallSite)
	case e.err != nil:
		c.Code, c.Description = codes.Error, redactedMessage(rec, e.err.Error())
	}
	return c
}

// evidenceAttributes are the attributes of an anomalous call: how the body
// was consumed and ended, the times, the connection, the error, and the
// anomaly mark.
func evidenceAttributes(rec *record, e *ending) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, 10)
	if e.how != finishFailed && e.how != finishNoBody {
		attrs = append(attrs,
			attribute.String(vocab.AttrBodyEnd, string(e.how)),
			attribute.Int64(vocab.AttrBodyReadBytes, rec.bytesRead.Load()),
			attribute.Int64(vocab.AttrBodyOpen, e.at.Sub(rec.headers).Milliseconds()),
		)
		if e.drained > 0 {
			attrs = append(attrs, attribute.Int64(vocab.AttrBodyDrainedBytes, e.drained))
		}
	}
	if !rec.headers.IsZero() {
		attrs = append(attrs, attribute.Int64(vocab.AttrTTFB, rec.headers.Sub(rec.start).Milliseconds()))
	}
	attrs = appendDial(attrs, rec)
	switch {
	case e.leak != nil:
		attrs = append(attrs, semconv.ErrorTypeKey.String(vocab.ErrorBodyLeaked))
	case e.how == finishFailed:
		// otelhttp recorded the call's error.type: telltale's kind, or the
		// Go type of an error it does not classify.
	case e.errKind != "":
		attrs = append(attrs, semconv.ErrorTypeKey.String(e.errKind))
	case e.err != nil:
		attrs = append(attrs, semconv.ErrorType(e.err))
	}
	return append(attrs, attribute.Bool(vocab.AttrAnomaly, true))
}

// writeEvidence writes the evidence of an anomalous call to its live span.
func writeEvidence(span trace.Span, c *anomaly.Call) {
	if !c.Anomalous() {
		return
	}
	span.SetAttributes(c.Evidence...)
	for _, ev := range c.Events {
		span.AddEvent(ev.Name, trace.WithTimestamp(ev.At), trace.WithAttributes(ev.Attrs...))
	}
	if c.Code != codes.Unset {
		span.SetStatus(c.Code, c.Description)
	}
}

// sentAttributes are what telltale records of the request as sent: the URL
// to record without its query values, the deadline budget, the upstream's
// name.
func (rec *record) sentAttributes() anomaly.Sent {
	s := anomaly.Sent{PeerService: rec.t.cfg.name}
	if redact.NeedsRedaction(rec.req.URL) {
		s.URL = rec.req.URL
	}
	if rec.hasBudget {
		s.HasRemaining, s.RemainingMS = true, rec.budget.Milliseconds()
	}
	return s
}

// redactedMessage is an error's text without the query values of the
// request's URL, which net/http's errors quote.
func redactedMessage(rec *record, msg string) string {
	if rec.req.URL == nil {
		return msg
	}
	return redact.Message(msg, rec.req.URL.String())
}

// short is "file.go:165": the call site as a signature and the server span
// name it.
func (c CallSite) short() string {
	if c.File == "" {
		return ""
	}
	return c.File + ":" + strconv.Itoa(c.Line)
}
