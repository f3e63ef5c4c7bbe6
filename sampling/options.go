package sampling

import (
	"context"
	"log/slog"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// An Option configures the sampler. Options go to [NewTracerProvider]
// among the SDK's own options — an Option is an
// sdktrace.TracerProviderOption for that reason — or to [Sampler]. Given
// to another tracer provider constructor, an Option has no effect, and the
// provider's first span logs a warning saying so.
type Option struct {
	sdktrace.TracerProviderOption // only where the option went astray
	apply                         func(*config)
}

func option(name string, apply func(*config)) Option {
	return Option{TracerProviderOption: sdktrace.WithSpanProcessor(&astray{option: name}), apply: apply}
}

type config struct {
	perSecond     int
	meterProvider metric.MeterProvider
	logger        *slog.Logger
}

// DefaultBudget is the default of [WithBudget]: anomaly traces per second.
const DefaultBudget = 10

func newConfig(opts []Option) config {
	c := config{perSecond: DefaultBudget}
	for _, o := range opts {
		if o.apply != nil {
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
// at most, in a burst of as many: per process, for all routes. The
// default, [DefaultBudget] (10 a second), gives an operator hundreds of
// examples a minute of each failure while capping what an outage, in which
// every request is anomalous, adds to the trace pipeline. The budget is
// fair, within that ceiling: half of it is kept for anomalies not exported
// in the last second (a new route failing, a new line leaking), so that a
// flood of one anomaly — which gets the other half at once, then the whole
// refill — cannot hide a rare one. Values below one are ignored; a budget
// of one keeps nothing for rare anomalies.
func WithBudget(tracesPerSecond int) Option {
	return option("WithBudget", func(c *config) {
		if tracesPerSecond > 0 {
			c.perSecond = tracesPerSecond
		}
	})
}

// WithMeterProvider sets the provider of the sampler's metrics
// (telltale.anomaly.traces.exported and .dropped, by anomaly kind). The
// global provider is used when none is given; nil is ignored.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return option("WithMeterProvider", func(c *config) {
		if mp != nil {
			c.meterProvider = mp
		}
	})
}

// WithLogger sets the logger of the summary of anomalies refused over the
// budget. slog.Default() is used when none is given; nil is ignored.
func WithLogger(l *slog.Logger) Option {
	return option("WithLogger", func(c *config) {
		if l != nil {
			c.logger = l
		}
	})
}

// astray is the span processor an Option registers when it is given to a
// tracer provider constructor other than NewTracerProvider: it does
// nothing but say so, once.
type astray struct {
	option string
	once   sync.Once
}

func (a *astray) OnStart(context.Context, sdktrace.ReadWriteSpan) {
	a.once.Do(func() {
		slog.Default().Warn("telltale: sampling." + a.option + " was given to a tracer provider built otherwise than with sampling.NewTracerProvider, and has no effect there; pass it to sampling.NewTracerProvider or sampling.Sampler")
	})
}
func (a *astray) OnEnd(sdktrace.ReadOnlySpan)      {}
func (a *astray) Shutdown(context.Context) error   { return nil }
func (a *astray) ForceFlush(context.Context) error { return nil }
