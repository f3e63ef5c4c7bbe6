package sampling

import (
	"context"
	"log/slog"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/internal/anomaly"
)

// NewTracerProvider returns sdktrace.NewTracerProvider(opts...) sampling
// with sampler — your head sampler, unchanged for every ordinary span —
// wrapped by [Sampler] (with its defaults, unless sampler already is one),
// and with the [IDGenerator]. A WithSampler or WithIDGenerator among opts
// is overridden: to keep an ID generator of your own, build the provider
// with [Sampler] and IDGenerator(yours).
func NewTracerProvider(sampler sdktrace.Sampler, opts ...sdktrace.TracerProviderOption) *sdktrace.TracerProvider {
	if _, ok := sampler.(*anomalySampler); !ok {
		sampler = Sampler(sampler)
	}
	opts = append(opts[:len(opts):len(opts)], sdktrace.WithSampler(sampler), sdktrace.WithIDGenerator(IDGenerator(nil)))
	return sdktrace.NewTracerProvider(opts...)
}

// Sampler returns a sampler that decides as inner does for every span,
// except the spans telltale replays because their unsampled request had an
// anomaly: those it records and samples, within the budget of anomaly
// traces per second ([WithBudget]). A trace admitted once is admitted for
// all its spans, whenever they come (a leak found by the garbage collector
// a minute later); a trace refused is refused for all of them. Refused
// traces are counted in the metric telltale.anomaly.traces.dropped and
// summarised in one log line at most every 10 seconds; the decision never
// blocks. The replayed spans need the [IDGenerator] too, or they are
// refused (and that is logged once).
func Sampler(inner sdktrace.Sampler, opts ...Option) sdktrace.Sampler {
	if inner == nil {
		inner = sdktrace.ParentBased(sdktrace.AlwaysSample())
	}
	cfg := newConfig(opts)
	s := &anomalySampler{inner: inner, logger: cfg.logger}
	s.budget.init(cfg)
	return s
}

type anomalySampler struct {
	inner  sdktrace.Sampler
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
	if !r.IDsGiven() {
		s.noIDs.Do(func() {
			s.logger.LogAttrs(context.Background(), slog.LevelWarn,
				"telltale: anomalies of unsampled requests are not exported: the tracer provider needs sampling.IDGenerator as well as sampling.Sampler (sampling.NewTracerProvider sets both)")
		})
		return sdktrace.SamplingResult{Decision: sdktrace.Drop, Tracestate: ts}
	}
	if !s.budget.admit(p.TraceID) {
		return sdktrace.SamplingResult{Decision: sdktrace.Drop, Tracestate: ts}
	}
	return sdktrace.SamplingResult{Decision: sdktrace.RecordAndSample, Tracestate: ts}
}

func (s *anomalySampler) Description() string {
	return "TelltaleAnomalies{" + s.inner.Description() + "}"
}

// An Option configures a [Sampler].
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	perSecond     int
	meterProvider metric.MeterProvider
	logger        *slog.Logger
}

// defaultBudget is the default of WithBudget.
const defaultBudget = 10

func newConfig(opts []Option) config {
	c := config{perSecond: defaultBudget}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	if c.meterProvider == nil {
		c.meterProvider = otel.GetMeterProvider()
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	return c
}

// WithBudget sets how many anomaly traces per second the sampler exports
// at most, in a burst of as many. The default, 10 a second, gives an
// operator hundreds of examples a minute of each failure — more than
// anyone opens — while capping what an outage, in which every request is
// anomalous, adds to the trace pipeline at about what a 1 % head sample of
// a 1 000 requests/s service sends anyway; metrics and logs still count
// every anomaly. Values below one are ignored.
func WithBudget(tracesPerSecond int) Option {
	return optionFunc(func(c *config) {
		if tracesPerSecond > 0 {
			c.perSecond = tracesPerSecond
		}
	})
}

// WithMeterProvider sets the provider of the sampler's metrics
// (telltale.anomaly.traces.exported and .dropped). The global provider is
// used when none is given; nil is ignored.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) {
		if mp != nil {
			c.meterProvider = mp
		}
	})
}

// WithLogger sets the logger of the summary of refused anomaly traces.
// slog.Default() is used when none is given; nil is ignored.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) {
		if l != nil {
			c.logger = l
		}
	})
}
