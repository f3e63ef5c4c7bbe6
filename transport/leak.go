package transport

import (
	"time"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/telltale-go/telltale/vocab"
)

// A LeakReason says how telltale knew a body had leaked.
type LeakReason string

// The four leak checks. A body is reported at most once, by the first check
// that finds it open.
const (
	// LeakUnreachable: the application dropped the body without closing
	// it, and the garbage collector found it.
	LeakUnreachable LeakReason = "unreachable"
	// LeakOutOfScope: the body was still open when the [Scope] it was
	// opened under (typically the inbound request) ended.
	LeakOutOfScope LeakReason = "out_of_scope"
	// LeakTooOld: the body was open longer than [WithMaxBodyAge].
	LeakTooOld LeakReason = "too_old"
	// LeakOpenAtClose: the body was still open when [Transport.Close] was
	// called, typically at shutdown.
	LeakOpenAtClose LeakReason = "open_at_close"
)

// A Leak is a response body reported as leaked.
type Leak struct {
	BodyInfo
	Reason LeakReason `json:"reason"`
	// Repaired tells whether telltale closed the body.
	Repaired bool `json:"repaired"`
	// At is when the leak was reported.
	At time.Time `json:"at"`
}

// reportLeak reports rec as leaked, once: the first check to see the body
// open wins, and a body closed meanwhile is not a leak. The report ends the
// client span (otelhttp alone would leave it open forever, and never export
// it) with status Error and a vocab.EventBodyLeaked event naming the call
// site; counts the leak; logs one warning; and, unless the Transport is
// report-only, closes the body, which frees its connection and the
// transport goroutines behind it.
func (t *Transport) reportLeak(rec *record, reason LeakReason) (Leak, bool) {
	if !rec.state.CompareAndSwap(stateOpen, stateLeaked) {
		return Leak{}, false
	}
	now := time.Now()
	repair := !t.cfg.reportOnly
	leak := Leak{BodyInfo: t.describe(rec, now), Reason: reason, Repaired: repair, At: now}

	t.reg.remove(rec)
	t.inst.bodyEnded()
	t.inst.bodyLeaked(reason, rec.hostname())
	t.leaks.add(leak)
	if repair {
		rec.repaired.Store(true)
		_ = rec.closeUnder()
		rec.release()
	}
	t.endCall(rec, &ending{how: finishLeaked, at: now, leak: &leak}, true)
	return leak, true
}

// unreachable is the cleanup the garbage collector runs when it finds the
// application's body unreachable. It must not refer to the body itself.
func (r *record) unreachable() {
	if r.isOpen() {
		// Reporting logs, exports and closes a connection: not on the
		// runtime's cleanup goroutine, which the whole process shares.
		go r.t.reportLeak(r, LeakUnreachable)
	}
}

// watchAges reports bodies open longer than the maximum age, until Close.
func (t *Transport) watchAges() {
	defer close(t.stopped)
	every := min(max(t.cfg.maxAge/4, 10*time.Millisecond), time.Second)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case now := <-tick.C:
			for _, rec := range t.reg.olderThan(now.Add(-t.cfg.maxAge)) {
				t.reportLeak(rec, LeakTooOld)
			}
		}
	}
}

// Attributes returns the attributes of the vocab.EventBodyLeaked event of
// leak on the client span of the leaked body: its reason, the call site and
// its stack, the bytes read, the age, the request. It is the evidence,
// once per trace; a server integration points to it from its own span
// with [Leak.PointerAttributes].
func (leak Leak) Attributes() []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String(vocab.AttrLeakReason, string(leak.Reason)),
		attribute.Bool(vocab.AttrLeakRepaired, leak.Repaired),
		semconv.CodeFunctionName(leak.CallSite.Function),
		semconv.CodeFilePath(leak.CallSite.File),
		semconv.CodeLineNumber(leak.CallSite.Line),
		semconv.CodeStacktrace(leak.Stack),
		attribute.Int64(vocab.AttrBodyReadBytes, leak.BytesRead),
		attribute.Int64(vocab.AttrLeakAge, leak.Age.Milliseconds()),
		semconv.HTTPRequestMethodKey.String(leak.Method),
		semconv.URLFull(leak.URL),
	}
}

// PointerAttributes returns the attributes of the vocab.EventBodyLeaked
// event a server integration puts on the span of the request that leaked
// the body, as the middleware does: the reason and the call site's
// function, file and line — a pointer to the client span that carries the
// whole evidence, stack included.
func (leak Leak) PointerAttributes() []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String(vocab.AttrLeakReason, string(leak.Reason)),
		semconv.CodeFunctionName(leak.CallSite.Function),
		semconv.CodeFilePath(leak.CallSite.File),
		semconv.CodeLineNumber(leak.CallSite.Line),
	}
}
