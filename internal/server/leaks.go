package server

import (
	"context"
	"errors"
	"net/http"
	"runtime/pprof"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/internal/anomaly"
	"github.com/telltale-go/telltale/transport"
	"github.com/telltale-go/telltale/vocab"
)

// The runtime/pprof labels Leaks puts on the handler's goroutine, which the
// goroutines it starts inherit. The route and trace id are for profiles
// (go tool pprof -tagfocus); the request and monitor ids are how a
// GoroutineMonitor tells whose goroutine it is.
const (
	labelRoute   = vocab.LabelRoute
	labelTraceID = vocab.LabelTraceID
	labelRequest = "telltale.request"
	labelMonitor = "telltale.monitor"
)

// LeaksConfig is what every adapter's LeaksConfig becomes.
type LeaksConfig struct {
	Goroutines    *GoroutineMonitor
	ProfileLabels bool
}

// Leaks binds every outbound response body of a request to a
// transport.Scope, reports those left open when the handler returns on the
// server span, and labels the handler's goroutine for the goroutine
// monitor and for profiles.
type Leaks struct{ cfg LeaksConfig }

// NewLeaks validates cfg and returns its Leaks.
func NewLeaks(cfg LeaksConfig) (*Leaks, error) {
	if cfg.Goroutines != nil && cfg.Goroutines.id == "" {
		return nil, errors.New("Leaks: Goroutines must come from NewGoroutineMonitor")
	}
	return &Leaks{cfg: cfg}, nil
}

// A LeaksRun is one request's leak accounting, from Begin to End.
type LeaksRun struct {
	parent  context.Context
	scope   *transport.Scope
	monitor *GoroutineMonitor
	id      uint64 // the request's id at the monitor
	labeled bool
	route   string
}

// Begin opens the request's scope and labels the handler's goroutine (with
// the route, when known now), and returns the request to hand on. End must
// be called on the same goroutine, even if the handler panics.
func (l *Leaks) Begin(r *http.Request, route string) (*http.Request, LeaksRun) {
	parent := r.Context()
	ctx, scope := transport.WithScope(parent)
	run := LeaksRun{parent: parent, scope: scope, route: route}
	if m := l.cfg.Goroutines; m != nil || l.cfg.ProfileLabels {
		sc := trace.SpanContextFromContext(parent)
		var buf [8]string // in order: pprof.Labels sorts its keys, at a cost, unless they are
		args := append(buf[:0], labelRoute, route)
		if m != nil {
			run.monitor, run.id = m, m.begin(route, sc, anomaly.RequestFrom(parent))
			args = append(args, labelMonitor, m.id, labelRequest, strconv.FormatUint(run.id, 10))
		}
		if l.cfg.ProfileLabels && sc.IsValid() {
			args = append(args, labelTraceID, sc.TraceID().String())
		}
		ctx = pprof.WithLabels(ctx, pprof.Labels(args...))
		pprof.SetGoroutineLabels(ctx)
		run.labeled = true
	}
	return WithContext(r, ctx), run
}

// End ends the scope: the bodies left open are leaks, reported by the
// transport on their client spans (with the whole evidence) and put on the
// server span as a count and one short pointer each — the call site's
// file, line and function. route is the route template if learnt only now.
// The goroutine gets back the labels it had.
func (run *LeaksRun) End(route string) {
	if route != "" {
		run.route = route
	}
	if run.labeled {
		// The goroutine goes back to serving the connection: restore
		// whatever labels it had (none, unless the server set some).
		pprof.SetGoroutineLabels(run.parent)
	}
	if run.monitor != nil {
		defer run.monitor.end(run.id, run.route)
	}
	leaks := run.scope.End()
	if len(leaks) == 0 {
		return
	}
	rec := anomaly.RequestFrom(run.parent)
	if rec == nil || !rec.Recording() {
		return
	}
	rec.SetAttributes(attribute.Int(vocab.AttrLeaks, len(leaks)))
	for _, l := range leaks {
		rec.AddEvent(vocab.EventBodyLeaked, l.At, l.PointerAttributes()...)
	}
	rec.MarkAnomalous() // the leaks' signatures came with their calls
}
