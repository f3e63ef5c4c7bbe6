package transport

import (
	"log/slog"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
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
	sites             siteFinder
	name              string
	spanNameFormatter func(transportName string, r *http.Request) string
}

// The defaults, each explained by the option that changes it.
const (
	defaultTimeout      = 30 * time.Second
	defaultDrainLimit   = 256 << 10
	defaultDrainTimeout = 100 * time.Millisecond
	defaultMaxTracked   = 100_000
	defaultLeakLogLimit = 100
)

func newConfig(opts []Option) config {
	c := config{
		timeout:      defaultTimeout,
		drainLimit:   defaultDrainLimit,
		drainTimeout: defaultDrainTimeout,
		maxTracked:   defaultMaxTracked,
		logLimit:     defaultLeakLogLimit,
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
	c.sites = newSiteFinder(c.skipPackages)
	return c
}

// WithTracerProvider sets the provider of the client spans. The global
// provider is used when none is given; nil is ignored. To have the
// anomalies of unsampled requests exported, the provider needs package
// sampling's sampler and ID generator.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *config) {
		if tp != nil {
			c.tracerProvider = tp
		}
	})
}

// WithMeterProvider sets the provider of telltale's body metrics and of
// otelhttp's client metrics. The global provider is used when none is
// given; nil is ignored.
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

// WithLogger sets the logger of leak warnings. slog.Default() is used when
// none is given; nil is ignored.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) {
		if l != nil {
			c.logger = l
		}
	})
}

// WithTimeout sets the backstop deadline of requests whose context has
// none; 30 s by default, because Go's default client waits forever. Like
// http.Client.Timeout it covers the whole exchange, reading the body
// included; unlike it, it is a context deadline inside the transport, so a
// repaired leak leaves no goroutine behind (http.Client.Timeout keeps one
// per request until it fires). Requests made with a [LongLived] context
// get none. Zero or a negative value disables it.
func WithTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.timeout = max(d, 0) })
}

// WithDrain sets how much of an unread body Close reads and discards so
// that the connection goes back to the pool — 256 KiB by default — and for
// how long at most — 100 ms by default, so that a trickling upstream cannot
// make Close block. Past either bound, closing the connection is cheaper. A
// limit of zero disables draining; a negative limit and a timeout of zero
// or less are ignored.
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
// second); [Transport.Close] stops it. Off by default: a streaming response
// may legitimately stay open for a long time ([LongLived] bodies and
// upgraded connections are never too old). Zero disables it.
func WithMaxBodyAge(d time.Duration) Option {
	return optionFunc(func(c *config) { c.maxAge = max(d, 0) })
}

// WithMaxTrackedBodies caps the open bodies tracked at once — 100 000 by
// default — so that an application leaking thousands of bodies a second
// cannot make tracking grow without bound. Bodies past the cap still drain
// on close, end their spans and are reported at Close; they are counted as
// untracked. Values below one are ignored.
func WithMaxTrackedBodies(n int) Option {
	return optionFunc(func(c *config) {
		if n > 0 {
			c.maxTracked = n
		}
	})
}

// WithLeakLogLimit caps the leak warnings logged per second — 100 by
// default; the count of those suppressed is logged once the second is
// over. Spans and metrics still record every leak. Zero or a negative value
// removes the cap.
func WithLeakLogLimit(perSecond int) Option {
	return optionFunc(func(c *config) { c.logLimit = max(perSecond, 0) })
}

// WithReportOnly reports leaks without repairing them: leaked bodies stay
// open, exactly as the application left them. Use it to watch a service
// without changing its behaviour; by default leaks are repaired, which
// frees the connection and the transport's goroutines behind the body.
func WithReportOnly() Option {
	return optionFunc(func(c *config) { c.reportOnly = true })
}

// WithSlowThreshold marks a call as slow when its response headers take
// longer than ttfb, or the whole exchange (until the body ends) takes
// longer than total: its span gets a vocab.EventUpstreamSlow event saying
// which, and is exported even if the request was not sampled. A zero
// threshold is not checked; by default neither is.
func WithSlowThreshold(ttfb, total time.Duration) Option {
	return optionFunc(func(c *config) {
		c.slowTTFB = max(ttfb, 0)
		c.slowTotal = max(total, 0)
	})
}

// WithSpanNameFormatter names the client spans with f instead of the
// default — "GET ads" for a Transport named ads ([WithName]), "GET <host>"
// (the URL's host) otherwise — as otelhttp's WithSpanNameFormatter does:
// f is given the Transport's name ("" without WithName) and the request,
// and must keep names few (a route template, not a path or a query
// value: span names are how Jaeger groups operations). nil is ignored.
func WithSpanNameFormatter(f func(transportName string, r *http.Request) string) Option {
	return optionFunc(func(c *config) {
		if f != nil {
			c.spanNameFormatter = f
		}
	})
}

// WithDeadlinePropagation sends the time left before the request context's
// deadline to the upstream, in the Connect protocol's Connect-Timeout-Ms
// header (whole milliseconds), so that a Connect server, or a server behind
// telltale's Deadline middleware, stops working when the caller stops
// waiting. A value the caller set itself is kept. Off by default: the
// header tells the upstream how long you will wait, which you may not want
// to tell third parties.
func WithDeadlinePropagation() Option {
	return optionFunc(func(c *config) { c.propagateDeadline = true })
}

// WithName names the Transport after the upstream it calls — "payments" —
// so that a service with several clients can tell them apart: its client
// spans are named "GET payments" and carry peer.service=payments (from
// which Jaeger draws its dependency graph), and its leak warnings, its
// anomaly signatures and the inspector name it. Empty names are ignored.
func WithName(name string) Option {
	return optionFunc(func(c *config) {
		if name = strings.TrimSpace(name); name != "" {
			c.name = name
		}
	})
}

// WithCallSiteSkip names packages of the application whose frames are not
// the call site of a request — an in-house HTTP helper, a client library
// kept in the same module — so that leak reports name the line that called
// them. The call site is otherwise the first frame of the application's own
// code (its main module), which already passes over the standard library,
// Echo, otelhttp and other modules' helpers.
func WithCallSiteSkip(packages ...string) Option {
	return optionFunc(func(c *config) {
		for _, p := range packages {
			if p = strings.TrimSpace(p); p != "" {
				c.skipPackages = append(c.skipPackages, p)
			}
		}
	})
}
