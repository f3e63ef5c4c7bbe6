package anomaly

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
)

// A Replayer is what an instrumentation (the transport, the server
// middleware) replays its spans with: otelhttp's tracer, so that a replayed
// span has the scope a sampled one has, until the provider shows it has no
// telltale sampler ([NoSampler]); then it says so once, and stops. Its zero
// value, once [Replayer.Init] has run, replays.
type Replayer struct {
	tracer   trace.Tracer
	logger   *slog.Logger // nil: slog.Default(), as it is when the warning is logged
	off      atomic.Bool
	warnOnce sync.Once
}

// Init sets the provider (the global one when nil, which delegates to
// whatever provider is set later) and the logger (slog.Default() when nil).
func (r *Replayer) Init(tp trace.TracerProvider, logger *slog.Logger) {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	r.tracer = tp.Tracer(otelhttp.ScopeName, trace.WithInstrumentationVersion(otelhttp.Version))
	r.logger = logger
}

// Tracer is the tracer replays start their spans with.
func (r *Replayer) Tracer() trace.Tracer { return r.tracer }

// Enabled reports whether replaying is of any use: until a replay found no
// telltale sampler.
func (r *Replayer) Enabled() bool { return !r.off.Load() }

// Saw takes the outcome of a replay: NoSampler stops replaying, and says
// once that the anomalies of unsampled requests are lost and how to keep
// them.
func (r *Replayer) Saw(o Outcome) {
	if o != NoSampler {
		return
	}
	r.off.Store(true)
	r.warnOnce.Do(func() {
		logger := r.logger
		if logger == nil {
			logger = slog.Default()
		}
		logger.LogAttrs(context.Background(), slog.LevelWarn,
			"telltale: an anomaly of a request the head sampler dropped is not exported, nor will later ones be: "+
				"build the tracer provider with sampling.NewTracerProvider (github.com/telltale-go/telltale/sampling) to keep them")
	})
}
