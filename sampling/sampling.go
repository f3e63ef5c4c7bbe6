package sampling

import (
	"context"
	"log/slog"
	"sync"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/internal/anomaly"
)

// NewTracerProvider returns sdktrace.NewTracerProvider(opts...) sampling
// with sampler — your head sampler, unchanged for every ordinary span —
// wrapped by [Sampler], with the [IDGenerator]. opts are the SDK's options
// and this package's ([WithBudget], [WithMeterProvider], [WithLogger]), in
// any order. A WithSampler or WithIDGenerator among them is overridden: to
// keep an ID generator of your own, build the provider with [Sampler] and
// IDGenerator(yours). The provider's Shutdown logs the last summary of
// anomalies refused over the budget.
func NewTracerProvider(sampler sdktrace.Sampler, opts ...sdktrace.TracerProviderOption) *sdktrace.TracerProvider {
	var own []Option
	sdkOpts := make([]sdktrace.TracerProviderOption, 0, len(opts)+3)
	for _, o := range opts {
		if so, ok := o.(Option); ok {
			own = append(own, so)
			continue
		}
		sdkOpts = append(sdkOpts, o)
	}
	s, ok := sampler.(*anomalySampler)
	switch {
	case !ok:
		s = newSampler(sampler, own)
	case len(own) > 0:
		s = newSampler(s.inner, append(s.opts[:len(s.opts):len(s.opts)], own...))
	}
	sdkOpts = append(sdkOpts, sdktrace.WithSampler(s), sdktrace.WithIDGenerator(IDGenerator(nil)),
		sdktrace.WithSpanProcessor(summaryFlusher{s}))
	return sdktrace.NewTracerProvider(sdkOpts...)
}

// Sampler returns a sampler that decides as inner does for every span,
// except the spans telltale replays because their unsampled request had an
// anomaly: those it records and samples within a budget of anomaly traces
// per second ([WithBudget]), fair to rare anomalies. The decision is taken
// once per request, by its first replayed span, and holds for all of them,
// whenever they come (a leak found by the garbage collector a minute
// later). Refused traces are counted in the metric
// telltale.anomaly.traces.dropped, and summarised per kind of anomaly in
// one log line each at most every 10 seconds; the decision never blocks.
// The replayed spans need the [IDGenerator] too, or they are refused (and
// that is logged once). A nil inner samples as the SDK's default does.
// Refusals of the last 10 seconds before the process ends are summarised
// only by [NewTracerProvider]'s provider, whose Shutdown flushes them; a
// provider built otherwise loses that last summary (the metric keeps the
// count).
func Sampler(inner sdktrace.Sampler, opts ...Option) sdktrace.Sampler {
	return newSampler(inner, opts)
}

func newSampler(inner sdktrace.Sampler, opts []Option) *anomalySampler {
	if inner == nil {
		inner = sdktrace.ParentBased(sdktrace.AlwaysSample())
	}
	cfg := newConfig(opts)
	s := &anomalySampler{inner: inner, opts: opts, logger: cfg.logger}
	s.budget.init(cfg)
	return s
}

type anomalySampler struct {
	inner  sdktrace.Sampler
	opts   []Option // as given, to add to in NewTracerProvider
	budget budget
	logger *slog.Logger
	noIDs  sync.Once
}

func (s *anomalySampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	r := anomaly.FromContext(p.ParentContext)
	if r == nil {
		return s.inner.ShouldSample(p)
	}
	r.Decided()
	ts := trace.SpanContextFromContext(p.ParentContext).TraceState()
	drop := sdktrace.SamplingResult{Decision: sdktrace.Drop, Tracestate: ts}
	if r.Probe() {
		return drop
	}
	if !r.IDsGiven() {
		s.noIDs.Do(func() {
			s.logger.LogAttrs(context.Background(), slog.LevelWarn,
				"telltale: anomalies of unsampled requests are not exported: the tracer provider needs sampling.IDGenerator as well as sampling.Sampler (sampling.NewTracerProvider sets both)")
		})
		return drop
	}
	if !r.Decision().Decide(s.budget.admit) {
		return drop
	}
	return sdktrace.SamplingResult{Decision: sdktrace.RecordAndSample, Tracestate: ts}
}

func (s *anomalySampler) Description() string {
	return "TelltaleAnomalies{" + s.inner.Description() + "}"
}

// summaryFlusher logs the last summary of refused anomalies when the
// provider shuts down, and stops the summary's timer.
type summaryFlusher struct{ s *anomalySampler }

func (summaryFlusher) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (summaryFlusher) OnEnd(sdktrace.ReadOnlySpan)                     {}
func (f summaryFlusher) Shutdown(context.Context) error {
	f.s.budget.close()
	return nil
}
func (summaryFlusher) ForceFlush(context.Context) error { return nil }
