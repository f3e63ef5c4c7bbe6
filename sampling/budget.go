package sampling

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/internal/version"
	"github.com/telltale-go/telltale/vocab"
)

// budget admits at most perSecond anomaly traces a second (a token bucket
// as deep as a second's worth), and remembers its recent decisions by trace
// id, so that every span of a trace gets the decision its first one got.
type budget struct {
	perSecond float64
	logger    *slog.Logger
	exported  metric.Int64Counter
	dropped   metric.Int64Counter

	mu        sync.Mutex
	tokens    float64
	last      time.Time
	decided   map[trace.TraceID]bool // trace id → admitted
	order     []trace.TraceID        // ring of the ids in decided, oldest at next
	next      int
	refused   int         // refused since the last summary
	summary   *time.Timer // logs the refused count
	firstDrop time.Time
}

// rememberedTraces bounds the decisions kept: at the default budget, the
// decisions of the last few minutes of an outage.
const rememberedTraces = 4096

// summaryEvery is how often at most the refused count is logged.
const summaryEvery = 10 * time.Second

func (b *budget) init(cfg config) {
	b.perSecond = float64(cfg.perSecond)
	b.tokens = b.perSecond
	b.logger = cfg.logger
	b.decided = make(map[trace.TraceID]bool, rememberedTraces)
	m := cfg.meterProvider.Meter(version.SamplingScope, metric.WithInstrumentationVersion(version.Version))
	b.exported = counter(m, vocab.MetricAnomalyTracesExported, "Traces of unsampled requests exported because telltale found an anomaly in them.")
	b.dropped = counter(m, vocab.MetricAnomalyTracesDropped, "Traces of unsampled requests with an anomaly, not exported: over the budget.")
}

// counter creates a counter, or a no-op one if the meter refuses it:
// metrics must never stop requests.
func counter(m metric.Meter, name, description string) metric.Int64Counter {
	c, err := m.Int64Counter(name, metric.WithUnit("{trace}"), metric.WithDescription(description))
	if err != nil {
		c, _ = noop.Meter{}.Int64Counter(name)
	}
	return c
}

// admit decides whether the trace id may be exported.
func (b *budget) admit(id trace.TraceID) bool {
	now := time.Now()
	b.mu.Lock()
	if ok, seen := b.decided[id]; seen {
		b.mu.Unlock()
		return ok
	}
	if !b.last.IsZero() {
		b.tokens = min(b.perSecond, b.tokens+now.Sub(b.last).Seconds()*b.perSecond)
	}
	b.last = now
	ok := b.tokens >= 1
	if ok {
		b.tokens--
	} else {
		b.refused++
		if b.summary == nil {
			b.firstDrop = now
			b.summary = time.AfterFunc(summaryEvery, b.summarize)
		}
	}
	b.remember(id, ok)
	b.mu.Unlock()
	if ok {
		b.exported.Add(context.Background(), 1)
	} else {
		b.dropped.Add(context.Background(), 1)
	}
	return ok
}

// remember keeps the decision, forgetting the oldest past the bound.
func (b *budget) remember(id trace.TraceID, ok bool) {
	if len(b.order) < rememberedTraces {
		b.order = append(b.order, id)
	} else {
		delete(b.decided, b.order[b.next])
		b.order[b.next] = id
		b.next = (b.next + 1) % rememberedTraces
	}
	b.decided[id] = ok
}

// summarize logs how many anomaly traces were refused since the first
// refusal it covers.
func (b *budget) summarize() {
	b.mu.Lock()
	n, since := b.refused, time.Since(b.firstDrop)
	b.refused, b.summary = 0, nil
	b.mu.Unlock()
	b.logger.LogAttrs(context.Background(), slog.LevelWarn,
		"telltale: anomaly traces over the budget were not exported (the metric "+vocab.MetricAnomalyTracesDropped+" counts them)",
		slog.Int("refused", n), slog.Duration("over", since.Round(time.Second)), slog.Int("budget_per_second", int(b.perSecond)))
}
