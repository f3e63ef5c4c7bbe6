package transport

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// A LeakReason says how telltale knew a body had leaked.
type LeakReason string

// The leak checks, and the report made when the Transport is closed.
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

// recentLeaks is how many leaks a Transport remembers for introspection.
const recentLeaks = 256

// leakLog keeps the most recent leaks, and counts all of them.
type leakLog struct {
	mu    sync.Mutex
	limit int
	ring  []Leak
	next  int
	total int64
}

func (l *leakLog) add(leak Leak) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total++
	if len(l.ring) < l.limit {
		l.ring = append(l.ring, leak)
		return
	}
	l.ring[l.next] = leak
	l.next = (l.next + 1) % l.limit
}

// recent returns the remembered leaks, oldest first, and the total count.
func (l *leakLog) recent() ([]Leak, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Leak, 0, len(l.ring))
	out = append(out, l.ring[l.next:]...)
	out = append(out, l.ring[:l.next]...)
	return out, l.total
}

// reportLeak reports rec as leaked for the given reason, once: the first
// check to see the body open wins, and a body closed meanwhile is not a leak.
// The report ends the client span (otelhttp alone would leave it open, and
// never export it) with status Error and an [EventBodyLeaked] event naming
// the call site; counts the leak; logs one warning; and, unless the
// Transport is report-only, closes the body so that its connection and the
// transport goroutines behind it are freed.
func (t *Transport) reportLeak(rec *record, reason LeakReason) (Leak, bool) {
	if !rec.state.CompareAndSwap(stateOpen, stateLeaked) {
		return Leak{}, false
	}
	now := time.Now()
	repair := !t.cfg.reportOnly
	leak := Leak{BodyInfo: rec.info(now), Reason: reason, Repaired: repair, At: now}

	t.reg.remove(rec)
	t.inst.bodyEnded()
	t.inst.bodyLeaked(reason, rec.hostname())
	t.leaks.add(leak)

	if repair {
		rec.repaired.Store(true)
		_ = rec.closeUnder()
		if rec.cancel != nil {
			rec.cancel()
		}
	}
	t.endLeakedSpan(rec, leak, now)
	if !t.logLimit.allow(now, t.cfg.logger) {
		return leak, true
	}
	t.cfg.logger.LogAttrs(context.Background(), slog.LevelWarn, "telltale: response body leaked",
		slog.String("transport", t.cfg.name),
		slog.String("reason", string(reason)),
		slog.String("call_site", leak.CallSite.String()),
		slog.String("method", leak.Method),
		slog.String("url", leak.URL),
		slog.Int64("bytes_read", leak.BytesRead),
		slog.Duration("age", leak.Age),
		slog.Bool("repaired", repair),
		slog.String("trace_id", leak.TraceID),
		slog.String("span_id", leak.SpanID),
	)
	return leak, true
}

func (t *Transport) endLeakedSpan(rec *record, leak Leak, now time.Time) {
	span := rec.span
	if span == nil || !span.IsRecording() {
		return
	}
	span.AddEvent(EventBodyLeaked, trace.WithTimestamp(now), trace.WithAttributes(LeakAttributes(leak)...))
	attrs := t.endAttrs(rec, finishLeaked, 0, now)
	*attrs = append(*attrs, attribute.String("error.type", ErrorTypeBodyLeaked))
	span.SetAttributes(*attrs...)
	t.putAttrs(attrs)
	span.SetStatus(codes.Error, fmt.Sprintf("response body leaked (%s): opened at %s and never closed", leak.Reason, leak.CallSite))
	span.End(trace.WithTimestamp(now))
}

// LeakAttributes returns the attributes of the [EventBodyLeaked] event for
// leak: its reason, call site and stack, bytes read and age. The Echo
// middleware uses it to put the same event on the server span.
func LeakAttributes(leak Leak) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String(AttrLeakReason, string(leak.Reason)),
		attribute.Bool(AttrLeakRepaired, leak.Repaired),
		attribute.String(AttrCodeFunction, leak.CallSite.Function),
		attribute.String(AttrCodeFile, leak.CallSite.File),
		attribute.Int(AttrCodeLine, leak.CallSite.Line),
		attribute.String(AttrCodeStacktrace, leak.Stack),
		attribute.Int64(AttrBodyReadBytes, leak.BytesRead),
		attribute.Float64(AttrLeakAge, ms(leak.Age)),
		attribute.String("http.request.method", leak.Method),
		attribute.String("url.full", leak.URL),
	}
}

type slowKind string

const (
	slowTTFB  slowKind = "ttfb"
	slowTotal slowKind = "total"
)

// markSlow records that a call crossed a slow threshold.
func (t *Transport) markSlow(rec *record, kind slowKind, threshold, observed time.Duration) {
	t.inst.upstreamSlow(kind, rec.hostname())
	span := rec.span
	if span == nil || !span.IsRecording() {
		return
	}
	span.SetAttributes(attribute.Bool(AttrSlow, true))
	span.AddEvent(EventUpstreamSlow, trace.WithAttributes(
		attribute.String(AttrSlowKind, string(kind)),
		attribute.Float64(AttrSlowThreshold, ms(threshold)),
		attribute.Float64(AttrSlowObserved, ms(observed)),
	))
}

// logLimiter caps leak warnings per second, so that a leak storm cannot
// flood the logs; spans and metrics still record every leak.
type logLimiter struct {
	mu         sync.Mutex
	perSecond  int
	window     time.Time
	inWindow   int
	suppressed int
}

// allow reports whether one more warning may be logged now. When a new
// window opens after warnings were suppressed, it logs how many were.
func (l *logLimiter) allow(now time.Time, logger *slog.Logger) bool {
	if l.perSecond <= 0 {
		return true
	}
	l.mu.Lock()
	if now.Sub(l.window) >= time.Second {
		suppressed := l.suppressed
		l.window, l.inWindow, l.suppressed = now, 0, 0
		if suppressed > 0 {
			defer logger.LogAttrs(context.Background(), slog.LevelWarn, "telltale: leak warnings suppressed",
				slog.Int("suppressed", suppressed), slog.Int("limit_per_second", l.perSecond))
		}
	}
	ok := l.inWindow < l.perSecond
	if ok {
		l.inWindow++
	} else {
		l.suppressed++
	}
	l.mu.Unlock()
	return ok
}
