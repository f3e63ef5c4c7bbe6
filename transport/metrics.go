package transport

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/telltale-go/telltale/internal/instrument"
	"github.com/telltale-go/telltale/internal/version"
	"github.com/telltale-go/telltale/vocab"
)

type instruments struct {
	open      metric.Int64UpDownCounter
	leaked    metric.Int64Counter
	drained   metric.Int64Counter
	untracked metric.Int64Counter
	slow      metric.Int64Counter
}

func newInstruments(mp metric.MeterProvider) instruments {
	m := mp.Meter(version.TransportScope, metric.WithInstrumentationVersion(version.Version))
	return instruments{
		open:      instrument.UpDownCounter(m, vocab.MetricBodiesOpen, "{body}", "Response bodies returned to the application and not yet closed, read to their end or reported as leaked."),
		leaked:    instrument.Counter(m, vocab.MetricBodiesLeaked, "{body}", "Response bodies reported as leaked, by reason and upstream."),
		drained:   instrument.Counter(m, vocab.MetricBytesDrained, "By", "Unread response bytes discarded on Close so that the connection could be reused."),
		untracked: instrument.Counter(m, vocab.MetricBodiesUntracked, "{body}", "Response bodies not tracked because the tracking cap was reached."),
		slow:      instrument.Counter(m, vocab.MetricUpstreamSlow, "{request}", "Outbound requests past a slow threshold, by kind and upstream."),
	}
}

func (i *instruments) bodyOpened()         { i.open.Add(context.Background(), 1) }
func (i *instruments) bodyEnded()          { i.open.Add(context.Background(), -1) }
func (i *instruments) bodyDrained(n int64) { i.drained.Add(context.Background(), n) }
func (i *instruments) bodyUntracked()      { i.untracked.Add(context.Background(), 1) }

// bodyLeaked and upstreamSlow are off the fast path: their attributes say
// which upstream, so that dashboards can tell which service leaks or lags.
func (i *instruments) bodyLeaked(r LeakReason, host string) {
	i.leaked.Add(context.Background(), 1, metric.WithAttributes(
		attribute.String(vocab.AttrLeakReason, string(r)), semconv.ServerAddress(host)))
}

func (i *instruments) upstreamSlow(kind, host string) {
	i.slow.Add(context.Background(), 1, metric.WithAttributes(
		attribute.String(vocab.AttrSlowKind, kind), semconv.ServerAddress(host)))
}
