package transport

import (
	"log/slog"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Defaults. Each one answers a failure of the incident described in the
// README; every one can be changed with an [Option].
const (
	// DefaultTimeout is the backstop deadline given to a request whose context
	// has none: Go's default client waits forever. It covers the whole
	// exchange, reading the body included, like http.Client.Timeout, but is
	// enforced as a context deadline inside the transport, so that a repaired
	// leak leaves no goroutine behind (http.Client.Timeout keeps one per
	// request until it fires). Change it with [WithTimeout].
	DefaultTimeout = 30 * time.Second

	// DefaultDrainLimit is how many unread bytes Close reads and discards so
	// that the connection can go back to the pool. Past it, draining costs
	// more than a new connection and the connection is closed instead.
	DefaultDrainLimit = 256 << 10

	// DefaultDrainTimeout bounds the time Close spends draining, so that a
	// trickling upstream cannot make Close block.
	DefaultDrainTimeout = 100 * time.Millisecond

	// DefaultMaxTrackedBodies caps how many open bodies one Transport tracks
	// at once, so that an application leaking thousands of bodies a second
	// cannot make tracking grow without bound. Bodies past the cap still
	// drain on close and end their spans; they are counted as untracked.
	DefaultMaxTrackedBodies = 100_000

	// DefaultLeakLogLimit caps leak warnings logged per second; past it,
	// one line says how many were suppressed. Spans and metrics still
	// record every leak.
	DefaultLeakLogLimit = 100
)

// An Option configures a [Transport].
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	propagators    propagation.TextMapPropagator
	logger         *slog.Logger

	timeout      time.Duration
	drainLimit   int64
	drainTimeout time.Duration
	maxAge       time.Duration
	maxTracked   int
	logLimit     int
	reportOnly   bool

	slowTTFB  time.Duration
	slowTotal time.Duration

	propagateDeadline bool
	skipPackages      []string
	name              string
}

func newConfig(opts []Option) config {
	c := config{
		timeout:      DefaultTimeout,
		drainLimit:   DefaultDrainLimit,
		drainTimeout: DefaultDrainTimeout,
		maxTracked:   DefaultMaxTrackedBodies,
		logLimit:     DefaultLeakLogLimit,
	}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	if c.tracerProvider == nil {
		c.tracerProvider = otel.GetTracerProvider()
	}
	if c.meterProvider == nil {
		c.meterProvider = otel.GetMeterProvider()
	}
	if c.propagators == nil {
		c.propagators = otel.GetTextMapPropagator()
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	return c
}

// WithTracerProvider sets the provider of the outbound client spans. The
// global provider is used when none is given; nil is ignored.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *config) {
		if tp != nil {
			c.tracerProvider = tp
		}
	})
}

// WithMeterProvider sets the provider of telltale's body metrics and
// otelhttp's client metrics. The global provider is used when none is given;
// nil is ignored.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) {
		if mp != nil {
			c.meterProvider = mp
		}
	})
}

// WithPropagators sets the propagators that inject the trace context into
// outbound requests. The global propagators are used when none are given;
// nil is ignored.
func WithPropagators(p propagation.TextMapPropagator) Option {
	return optionFunc(func(c *config) {
		if p != nil {
			c.propagators = p
		}
	})
}

// WithLogger sets the logger that receives one warning per leaked body.
// slog.Default() is used when none is given; nil is ignored.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) {
		if l != nil {
			c.logger = l
		}
	})
}

// WithTimeout sets the backstop deadline given to requests whose context has
// no deadline (see [DefaultTimeout]). Zero or a negative value disables it.
func WithTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.timeout = max(d, 0) })
}

// WithDrain sets how much of an unread body Close drains, and for how long at
// most, before it gives up and closes the connection (see
// [DefaultDrainLimit], [DefaultDrainTimeout]). A limit of zero disables
// draining; a negative limit is ignored. Draining is always bounded in time:
// a timeout of zero or less is ignored.
func WithDrain(limit int64, timeout time.Duration) Option {
	return optionFunc(func(c *config) {
		if limit >= 0 {
			c.drainLimit = limit
		}
		if timeout > 0 {
			c.drainTimeout = timeout
		}
	})
}

// WithMaxBodyAge reports a body still open after d as a leak (reason
// [LeakTooOld]) and repairs it unless [WithReportOnly] is set. Checking ages
// takes one goroutine per Transport, woken every d/4 (at least every
// second); [Transport.Close] stops it. Zero, the default, disables the check:
// a streaming response may legitimately stay open for a long time.
func WithMaxBodyAge(d time.Duration) Option {
	return optionFunc(func(c *config) { c.maxAge = max(d, 0) })
}

// WithMaxTrackedBodies caps the open bodies tracked at once (see
// [DefaultMaxTrackedBodies]). Values below one are ignored.
func WithMaxTrackedBodies(n int) Option {
	return optionFunc(func(c *config) {
		if n > 0 {
			c.maxTracked = n
		}
	})
}

// WithLeakLogLimit caps the leak warnings logged per second (see
// [DefaultLeakLogLimit]). Zero or a negative value removes the cap.
func WithLeakLogLimit(perSecond int) Option {
	return optionFunc(func(c *config) { c.logLimit = max(perSecond, 0) })
}

// WithReportOnly reports leaks without repairing them: leaked bodies are left
// open, exactly as the application left them. Use it to watch a service
// without changing its behaviour; by default leaks are repaired, which frees
// the connection and the transport's goroutines behind the body.
func WithReportOnly() Option {
	return optionFunc(func(c *config) { c.reportOnly = true })
}

// WithSlowThreshold marks an upstream call as slow when its response headers
// take longer than ttfb, or the whole exchange (until the body is closed or
// read to its end) takes longer than total. A slow call gets the attribute
// telltale.upstream.slow and an event [EventUpstreamSlow] saying which limit
// it crossed. A zero threshold is not checked.
func WithSlowThreshold(ttfb, total time.Duration) Option {
	return optionFunc(func(c *config) {
		c.slowTTFB = max(ttfb, 0)
		c.slowTotal = max(total, 0)
	})
}

// WithDeadlinePropagation sends the time left before the request context's
// deadline to the upstream in [TimeoutHeader], so that an upstream running
// the telltale middleware (or any server reading the header) stops when the
// caller stops waiting. Off by default: the header tells the upstream how
// long you will wait, which you may not want to tell third parties.
func WithDeadlinePropagation() Option {
	return optionFunc(func(c *config) { c.propagateDeadline = true })
}

// WithName names the Transport — typically after the upstream or the team
// it serves, "payments" — in its leak warnings and in the leak inspector,
// where a service with several clients needs to tell them apart. Empty names
// are ignored.
func WithName(name string) Option {
	return optionFunc(func(c *config) {
		if name = strings.TrimSpace(name); name != "" {
			c.name = name
		}
	})
}

// WithCallSiteSkip names more packages whose frames are skipped when telltale
// looks for the line of code that made a request, for example an in-house
// HTTP helper package, so that leak reports name the helper's caller.
// net/http, otelhttp and telltale's own packages are always skipped.
func WithCallSiteSkip(packages ...string) Option {
	return optionFunc(func(c *config) {
		for _, p := range packages {
			if p = strings.TrimSpace(p); p != "" {
				c.skipPackages = append(c.skipPackages, p)
			}
		}
	})
}
