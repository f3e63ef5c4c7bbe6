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

// A Server is the server span of an unsampled request, kept so that it can
// be exported if the request turns out anomalous — at its end, or later,
// when a body it leaked is found by the garbage collector or a goroutine it
// started is found still running. It holds nothing of the request but what
// its Describer keeps, so that whoever keeps it for later (a goroutine
// monitor's history) keeps little.
type Server struct {
	tracer trace.Tracer
	self   trace.SpanContext
	start  time.Time

	mu        sync.Mutex
	describer Describer
	attrs     []attribute.KeyValue // set by the middleware during the request
	events    []event
	anomalous bool
	ended     bool
	end       time.Time
	exported  bool
}

type event struct {
	name  string
	at    time.Time
	attrs []attribute.KeyValue
}

// Init sets up a Server embedded in its owner's struct, for the dropped
// server span self, started at start, to be replayed with tracer (the
// server instrumentation's own). It is not ended until [Server.End].
func (s *Server) Init(tracer trace.Tracer, self trace.SpanContext, start time.Time) {
	s.tracer, s.self, s.start = tracer, self, start
}

// A ServerContext is the context of an unsampled request: it carries the
// request's [Server] to the transport and the middleware, as long as
// anything of the request holds the context.
type ServerContext struct {
	context.Context
	srv *Server
}

type serverKey struct{}

// Init makes c a child of parent that carries srv.
func (c *ServerContext) Init(parent context.Context, srv *Server) {
	c.Context, c.srv = parent, srv
}

// Value makes the ServerContext the context that carries its Server.
func (c *ServerContext) Value(key any) any {
	if key == (serverKey{}) {
		return c.srv
	}
	return c.Context.Value(key)
}

// ServerFrom returns the Server of the request ctx belongs to, or nil when
// the request is sampled (or not traced by telltale).
func ServerFrom(ctx context.Context) *Server {
	s, _ := ctx.Value(serverKey{}).(*Server)
	return s
}

// SpanContext returns the dropped span's context: its ids are the ones a
// replay has.
func (s *Server) SpanContext() trace.SpanContext { return s.self }

// SetAttributes adds attributes to the span, as trace.Span.SetAttributes.
func (s *Server) SetAttributes(attrs ...attribute.KeyValue) {
	s.mu.Lock()
	s.attrs = append(s.attrs, attrs...)
	s.mu.Unlock()
}

// AddEvent adds an event that happened at at.
func (s *Server) AddEvent(name string, at time.Time, attrs ...attribute.KeyValue) {
	s.mu.Lock()
	s.events = append(s.events, event{name: name, at: at, attrs: attrs})
	s.mu.Unlock()
}

// MarkAnomalous makes the span exported when the request ends.
func (s *Server) MarkAnomalous() {
	s.mu.Lock()
	s.anomalous = true
	s.mu.Unlock()
}

// End ends the request at end; d describes its span. If the request was
// anomalous, the span is exported now, and End returns the outcome;
// otherwise it is kept, and exported if an anomaly of the request is found
// later ([Server.Anomaly]).
func (s *Server) End(d Describer, end time.Time) Outcome {
	s.mu.Lock()
	s.describer, s.ended, s.end = d, true, end
	export := s.exportNow(s.anomalous)
	s.mu.Unlock()
	if !export {
		return Pending
	}
	return s.replay()
}

// Anomaly reports an anomaly of the request found by another span — a
// client span, an orphaned goroutine — which needs the server span as its
// parent in the trace: the server span is exported when the request ends,
// or now if it has already ended.
func (s *Server) Anomaly() {
	s.mu.Lock()
	s.anomalous = true
	export := s.exportNow(s.ended)
	s.mu.Unlock()
	if export {
		s.replay()
	}
}

// exportNow reports whether the span is to be exported now, given whether
// it is ready to: once. s.mu is held.
func (s *Server) exportNow(ready bool) bool {
	if !ready || s.exported {
		return false
	}
	s.exported = true
	return true
}

// replay exports the span; it runs once, after End.
func (s *Server) replay() Outcome {
	name, parent, attrs, code, desc := s.describer.Describe()
	span, o := Start(s.tracer, parent, s.self, name,
		trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(s.start))
	if span == nil {
		return o
	}
	s.mu.Lock()
	extra, events := s.attrs, s.events
	s.mu.Unlock()
	span.SetAttributes(attrs...)
	span.SetAttributes(extra...)
	span.SetAttributes(attribute.Bool(vocab.AttrReplayed, true))
	for _, e := range events {
		span.AddEvent(e.name, trace.WithTimestamp(e.at), trace.WithAttributes(e.attrs...))
	}
	if code != codes.Unset {
		span.SetStatus(code, desc)
	}
	span.End(trace.WithTimestamp(s.end))
	s.mu.Lock()
	s.attrs, s.events = nil, nil // exported: a monitor's history keeps the ids only
	s.mu.Unlock()
	return o
}
