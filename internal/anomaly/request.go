package anomaly

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/vocab"
)

// A Describer tells, once its request has ended, what its server span
// would have carried: its name and parent, the attributes otelhttp
// records, its status. It must not depend on anything that is reused after
// the request (an echo.Context is).
type Describer interface {
	Describe() (name string, parent trace.SpanContext, attrs []attribute.KeyValue, status codes.Code, description string)
}

// A Request is telltale's state of one inbound request, shared by the
// server middleware and by the transport calls made for it: the evidence
// for its server span, whether a call of it failed, what went wrong. It is
// the request's context too ([RequestFrom] finds it from any context
// derived from it), embedded in the middleware's own per-request struct:
// one allocation for both.
//
// For a request whose server span records, evidence goes to the live span
// as it comes. For one the head sampler dropped, and whose tracer provider
// can replay ([Replayer]), the Request keeps what the server span and
// every client span would have carried, within the SDK's limits
// ([MaxEvents], [MaxAttributes], [MaxCalls]), and exports them all if the
// request turns out anomalous — when it ends, or later, when a body it
// leaked is found by the garbage collector or a goroutine it started is
// found still running. Once exported, or refused by the sampler's budget,
// it keeps nothing but the ids and the decision.
type Request struct {
	context.Context // the request's context as it came

	self   trace.SpanContext
	start  time.Time
	live   trace.Span           // the server span, when it records
	tp     trace.TracerProvider // the provider that started it
	tracer trace.Tracer         // replays the request's spans; nil when they are not kept

	mu           sync.Mutex
	route        string
	attrs        []attribute.KeyValue
	droppedAttrs int
	events       events
	calls        []Call
	droppedCalls int
	replayed     int // calls exported so far
	late         []func(base context.Context, d *Decision, parent trace.SpanContext)
	logs         []func(inBackend bool)
	code         codes.Code // the status telltale set, over otelhttp's
	description  string
	marked       bool // telltale.anomaly is set on the server span
	anomalous    bool
	failedCall   bool
	ended        bool
	end          time.Time
	describer    Describer
	state        exportState
	decision     Decision
}

type exportState uint8

const (
	statePending   exportState = iota // nothing exported yet
	stateExporting                    // the export runs: new calls queue for it
	stateDone                         // exported or refused: nothing is kept
)

type requestKey struct{}

// Init sets up a Request embedded in its owner's struct: the request whose
// context is parent, served under span, started at start. tracer, when not
// nil, replays the request's spans: the request was not sampled, and its
// provider can replay ([Replayer.Tracer]).
func (r *Request) Init(parent context.Context, span trace.Span, start time.Time, tracer trace.Tracer) {
	r.Context, r.self, r.start, r.tracer = parent, span.SpanContext(), start, tracer
	r.tp = span.TracerProvider()
	if span.IsRecording() {
		r.live = span
	}
}

// Value makes the Request the context that carries itself.
func (r *Request) Value(key any) any {
	if key == (requestKey{}) {
		return r
	}
	return r.Context.Value(key)
}

// RequestFrom returns the Request of the inbound request ctx belongs to, or
// nil outside one.
func RequestFrom(ctx context.Context) *Request {
	r, _ := ctx.Value(requestKey{}).(*Request)
	return r
}

// SpanContext is the server span's: its ids are the ones a replay has.
func (r *Request) SpanContext() trace.SpanContext { return r.self }

// TracerProvider is the provider that started the server span.
func (r *Request) TracerProvider() trace.TracerProvider { return r.tp }

// Replayable reports whether the request's spans are kept for a replay.
func (r *Request) Replayable() bool { return r.tracer != nil }

// Recording reports whether anything records what happens to the request:
// its live span, or the replay.
func (r *Request) Recording() bool { return r.live != nil || r.tracer != nil }

// SetRoute sets the route template that served the request, for the
// signatures of its anomalies.
func (r *Request) SetRoute(route string) {
	r.mu.Lock()
	r.route = route
	r.mu.Unlock()
}

// SetAttributes adds attributes to the server span, as
// trace.Span.SetAttributes.
func (r *Request) SetAttributes(attrs ...attribute.KeyValue) {
	if r.live != nil {
		r.live.SetAttributes(attrs...)
	}
	if r.tracer == nil {
		return
	}
	r.mu.Lock()
	if r.state == statePending {
		n := min(len(attrs), MaxAttributes-len(r.attrs))
		r.attrs = append(r.attrs, attrs[:n]...)
		r.droppedAttrs += len(attrs) - n
	}
	r.mu.Unlock()
}

// AddEvent adds an event that happened at at to the server span.
func (r *Request) AddEvent(name string, at time.Time, attrs ...attribute.KeyValue) {
	if r.live != nil {
		r.live.AddEvent(name, trace.WithTimestamp(at), trace.WithAttributes(attrs...))
	}
	if r.tracer == nil {
		return
	}
	r.mu.Lock()
	if r.state == statePending {
		r.events.add(Event{Name: name, At: at, Attrs: attrs})
	}
	r.mu.Unlock()
}

// SetStatus sets the server span's status, over otelhttp's.
func (r *Request) SetStatus(code codes.Code, description string) {
	if r.live != nil {
		r.live.SetStatus(code, description)
	}
	if r.tracer == nil {
		return
	}
	r.mu.Lock()
	r.code, r.description = code, description
	r.mu.Unlock()
}

// Anomaly records an anomaly found on the server span: the span is marked
// telltale.anomaly (what a tail sampler keeps), and, if the head sampler
// dropped the request, the request is exported when it ends.
func (r *Request) Anomaly(kind Kind, site string) {
	r.decision.addSignature(Signature{Kind: kind, Site: site})
	r.MarkAnomalous()
}

// MarkAnomalous records an anomaly of the server span whose kind is
// already known (a degraded answer: its failed call's): the span is marked
// telltale.anomaly, and the request is exported when it ends.
func (r *Request) MarkAnomalous() {
	r.mu.Lock()
	r.anomalous = true
	mark := !r.marked
	r.marked = true
	r.mu.Unlock()
	if mark {
		r.SetAttributes(attribute.Bool(vocab.AttrAnomaly, true))
	}
}

// FailedCall reports whether a call made for the request failed or was
// answered 5xx: an answer that still succeeds is degraded.
func (r *Request) FailedCall() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failedCall
}

// CallEnded takes a call of the request that ended: its failure and its
// anomalies count for the request, and, when the request is kept for a
// replay and keep is true, the call is kept with it — or exported at once,
// if the request already was, or if it ended before this anomalous call
// did. keep is false for a call whose span something else exports (a
// provider other than the request's sampled it) or that has no span of
// its own (a no-op tracer's): replaying it would export it twice, or with
// the server span's ids. CallEnded reports whether the call is kept, or
// replayed: not past the request's bound.
func (r *Request) CallEnded(c *Call, keep bool) bool {
	for _, sig := range c.Anomalies {
		r.decision.addSignature(sig)
	}
	r.mu.Lock()
	if c.Failed {
		r.failedCall = true
	}
	if r.tracer == nil {
		r.mu.Unlock()
		return false
	}
	if c.Anomalous() {
		r.anomalous = true
	}
	switch r.state {
	case stateDone:
		// After the export, a call is replayed on its own, within the
		// bound: MaxCalls in all, and as many again for anomalous ones.
		// Past it, it is lost: the server span, exported, cannot count it.
		replay := keep && r.replayed < MaxCalls || keep && c.Anomalous() && r.replayed < 2*MaxCalls
		if replay {
			r.replayed++
		}
		r.mu.Unlock()
		if replay && r.decision.Admitted() {
			c.replay(r.tracer, r.replayBase(), &r.decision, r.self)
		}
		return replay
	case stateExporting:
		kept := keep && r.keepCall(c)
		r.mu.Unlock()
		return kept
	}
	kept := keep && r.keepCall(c)
	export := r.ended && c.Anomalous()
	if export {
		r.state = stateExporting
	}
	r.mu.Unlock()
	if export {
		r.export()
	}
	return kept
}

// keepCall keeps c, within MaxCalls for the request, those exported
// already included: past it, an anomalous call takes the place of a
// healthy one. It reports whether c is kept. r.mu is held.
func (r *Request) keepCall(c *Call) bool {
	if len(r.calls)+r.replayed < MaxCalls {
		if r.calls == nil {
			r.calls = make([]Call, 0, 4)
		}
		r.calls = append(r.calls, *c)
		return true
	}
	r.droppedCalls++
	if !c.Anomalous() {
		return false
	}
	for i := range r.calls {
		if !r.calls[i].Anomalous() {
			r.calls[i] = *c
			return true
		}
	}
	return false
}

// End ends the request at end; d describes its server span. If the request
// is kept for a replay and was anomalous, it is exported now, and End
// returns the outcome; otherwise it stays kept, to be exported if an
// anomaly of the request is found later.
func (r *Request) End(d Describer, end time.Time) Outcome {
	r.mu.Lock()
	r.describer, r.ended, r.end = d, true, end
	export := r.tracer != nil && r.anomalous && r.state == statePending
	if export {
		r.state = stateExporting
	}
	r.mu.Unlock()
	if !export {
		return Pending
	}
	return r.export()
}

// Late reports an anomaly of the request found after it ended, in a span
// of its own (an orphaned goroutine's) that emit starts under parent, the
// server span, with the request's decision ([Start] with base and d): the
// request is exported first if it was not, and emit runs only if the
// request is, or was, admitted.
func (r *Request) Late(kind Kind, site string, emit func(base context.Context, d *Decision, parent trace.SpanContext)) {
	r.decision.addSignature(Signature{Kind: kind, Site: site})
	r.mu.Lock()
	r.anomalous = true
	switch {
	case r.state == stateDone:
		r.mu.Unlock()
		if r.decision.Admitted() {
			emit(r.replayBase(), &r.decision, r.self)
		}
		return
	case r.state == stateExporting || !r.ended:
		r.late = append(r.late, emit)
		r.mu.Unlock()
		return
	}
	r.late = append(r.late, emit)
	r.state = stateExporting
	r.mu.Unlock()
	r.export()
}

// DeferLog runs log once it is known whether the request's trace is in
// the trace backend: at once for a request whose span is sampled or that
// is not kept for a replay, after the decision otherwise.
func (r *Request) DeferLog(log func(inBackend bool)) {
	if r.tracer == nil {
		log(r.self.IsSampled())
		return
	}
	r.mu.Lock()
	if r.state != stateDone {
		r.logs = append(r.logs, log)
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	log(r.decision.Admitted())
}

// Ended reports whether the request has ended.
func (r *Request) Ended() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ended
}

// Decision is the request's export decision.
func (r *Request) Decision() *Decision { return &r.decision }

// replayBase is the context replayed spans start in: the request's, for
// its baggage and values, without its cancellation.
func (r *Request) replayBase() context.Context {
	return context.WithoutCancel(r.Context)
}

// parentOf is the span a replayed call goes under: the call it was made
// within, when that call is replayed with it (a token fetched inside
// another call's round trip), else the server span — also for a call made
// under a span of the application's, which is not replayed (the call says
// so).
func (r *Request) parentOf(c *Call, calls []Call) trace.SpanContext {
	if c.Parent.IsValid() && c.Parent != r.self.SpanID() {
		for i := range calls {
			if calls[i].Self.SpanID() == c.Parent {
				return calls[i].Self
			}
		}
	}
	return r.self
}

// export replays the server span, then every call kept and every late
// span queued, until none is left; then it releases what it kept. It runs
// once, after End, in the state stateExporting.
func (r *Request) export() Outcome {
	r.mu.Lock()
	r.decision.setRoute(r.route)
	attrs, evs := r.attrs, r.events
	droppedAttrs, droppedCalls := r.droppedAttrs, r.droppedCalls
	ownCode, ownDescription := r.code, r.description
	r.mu.Unlock()

	base := r.replayBase()
	name, parent, described, code, desc := r.describer.Describe()
	span, outcome := Start(r.tracer, base, &r.decision, parent, r.self, name,
		trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(r.start))
	if span != nil {
		span.SetAttributes(described...)
		span.SetAttributes(attrs...)
		span.SetAttributes(attribute.Bool(vocab.AttrReplayed, true))
		if n := r.decision.SimilarRefused(); n > 0 {
			span.SetAttributes(attribute.Int64(vocab.AttrReplaySimilarRefused, n))
		}
		if droppedCalls > 0 {
			span.SetAttributes(attribute.Int(vocab.AttrReplayClientSpansDropped, droppedCalls))
		}
		if evs.dropped > 0 {
			span.SetAttributes(attribute.Int(vocab.AttrReplayEventsDropped, evs.dropped))
		}
		if droppedAttrs > 0 {
			span.SetAttributes(attribute.Int(vocab.AttrReplayAttributesDropped, droppedAttrs))
		}
		evs.each(func(ev Event) {
			span.AddEvent(ev.Name, trace.WithTimestamp(ev.At), trace.WithAttributes(ev.Attrs...))
		})
		if code != codes.Unset {
			span.SetStatus(code, desc)
		}
		if ownCode != codes.Unset {
			span.SetStatus(ownCode, ownDescription)
		}
		span.End(trace.WithTimestamp(r.end))
	}
	admitted := span != nil
	for {
		r.mu.Lock()
		calls, late := r.calls, r.late
		r.calls, r.late = nil, nil
		r.replayed += len(calls)
		if len(calls) == 0 && len(late) == 0 {
			// Exported or refused: a monitor's history keeps the ids only.
			r.state = stateDone
			r.attrs, r.events = nil, events{}
			logs := r.logs
			r.logs = nil
			r.mu.Unlock()
			for _, log := range logs {
				log(admitted)
			}
			return outcome
		}
		r.mu.Unlock()
		if !admitted {
			continue
		}
		for i := range calls {
			calls[i].replay(r.tracer, base, &r.decision, r.parentOf(&calls[i], calls))
		}
		for _, emit := range late {
			emit(base, &r.decision, r.self)
		}
	}
}
