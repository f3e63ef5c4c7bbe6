package anomaly

import (
	"context"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/trace"
)

// A Replayer tells, for the tracer provider a request's span came from,
// whether that provider can replay the spans of unsampled requests — its
// sampler is package sampling's and its ID generator gives replayed spans
// their ids — and gives the tracer to replay them with: otelhttp's, so that
// a replayed span has the instrumentation scope a sampled one has. It
// finds out once per provider, with a probe span that is never recorded,
// and says once, for a provider that cannot, that the anomalies of
// unsampled requests will not be exported and how to fix it. The decision
// is per request, from the provider that request used: a request traced by
// a no-op provider (tracing off, or the global provider before one is set)
// costs nothing and is not warned about.
type Replayer struct {
	logger *slog.Logger // nil: slog.Default(), as it is when the warning is logged

	last  atomic.Pointer[verdict] // the provider seen last: almost always the only one
	mu    sync.Mutex
	known map[trace.TracerProvider]*verdict
	warn  sync.Once
}

type verdict struct {
	tp     trace.TracerProvider
	tracer trace.Tracer // nil when tp cannot replay
}

// maxProviders bounds the providers a Replayer remembers.
const maxProviders = 64

// NewReplayer returns a Replayer that warns with logger (slog.Default()
// when nil).
func NewReplayer(logger *slog.Logger) *Replayer {
	return &Replayer{logger: logger}
}

// Tracer returns the tracer that replays the spans of tp, or nil when tp
// cannot replay them.
func (r *Replayer) Tracer(tp trace.TracerProvider) trace.Tracer {
	if v := r.last.Load(); v != nil && v.tp == tp {
		return v.tracer
	}
	return r.lookup(tp)
}

func (r *Replayer) lookup(tp trace.TracerProvider) trace.Tracer {
	if tp == nil || !reflect.TypeOf(tp).Comparable() {
		return nil
	}
	r.mu.Lock()
	v, ok := r.known[tp]
	if !ok {
		v = &verdict{tp: tp}
		tracer := tp.Tracer(otelhttp.ScopeName, trace.WithInstrumentationVersion(otelhttp.Version))
		if probe(tracer) {
			v.tracer = tracer
		}
		if r.known == nil || len(r.known) >= maxProviders {
			r.known = make(map[trace.TracerProvider]*verdict)
		}
		r.known[tp] = v
	}
	r.mu.Unlock()
	r.last.Store(v)
	if v.tracer == nil {
		r.warnOnce()
	}
	return v.tracer
}

func (r *Replayer) warnOnce() {
	r.warn.Do(func() {
		logger := r.logger
		if logger == nil {
			logger = slog.Default()
		}
		logger.LogAttrs(context.Background(), slog.LevelWarn,
			"telltale: the anomalies of requests the head sampler drops are not exported: the tracer provider has no telltale sampler and ID generator; "+
				"build it with sampling.NewTracerProvider (github.com/telltale-go/telltale/sampling) to keep them")
	})
}
