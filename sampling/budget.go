package sampling

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/internal/instrument"
	"github.com/telltale-go/telltale/internal/version"
	"github.com/telltale-go/telltale/vocab"
)

// budget admits at most perSecond anomaly traces a second (a token bucket
// as deep as a second's worth), and remembers its decisions by trace id, so
// that every span of a trace gets the decision its first one got: the
// traces it admitted for the last ten minutes at least (a body leaked and
// found by the garbage collector comes late), the last few thousand it
// refused, which an outage turns over in seconds.
type budget struct {
	perSecond float64
	logger    *slog.Logger
	exported  metric.Int64Counter
	dropped   metric.Int64Counter

	mu        sync.Mutex
	tokens    float64
	last      time.Time
	admitted  recent
	denied    recent
	refused   int         // refused since the last summary
	summary   *time.Timer // logs the refused count
	firstDrop time.Time
}

// recent is a bounded set of trace ids: past its size, the oldest go.
type recent struct {
	ids   map[trace.TraceID]struct{}
	order []trace.TraceID // ring, the oldest at next
	next  int
	size  int
}

func (r *recent) init(size int) {
	r.size, r.ids = size, make(map[trace.TraceID]struct{}, min(size, 4096))
}

func (r *recent) has(id trace.TraceID) bool {
	_, ok := r.ids[id]
	return ok
}

func (r *recent) add(id trace.TraceID) {
	if len(r.order) < r.size {
		r.order = append(r.order, id)
	} else {
		delete(r.ids, r.order[r.next])
		r.order[r.next] = id
		r.next = (r.next + 1) % r.size
	}
	r.ids[id] = struct{}{}
}

// rememberAdmitted is how long admitted traces are remembered, in seconds
// of the budget; refusedTraces how many refused ones.
const (
	rememberAdmitted = 600
	refusedTraces    = 4096
)

// summaryEvery is how often at most the refused count is logged.
const summaryEvery = 10 * time.Second

func (b *budget) init(cfg config) {
	b.perSecond = float64(cfg.perSecond)
	b.tokens = b.perSecond
	b.logger = cfg.logger
	b.admitted.init(max(4096, cfg.perSecond*rememberAdmitted))
	b.denied.init(refusedTraces)
	m := cfg.meterProvider.Meter(version.SamplingScope, metric.WithInstrumentationVersion(version.Version))
	b.exported = instrument.Counter(m, vocab.MetricAnomalyTracesExported, "{trace}", "Traces of unsampled requests exported because telltale found an anomaly in them.")
	b.dropped = instrument.Counter(m, vocab.MetricAnomalyTracesDropped, "{trace}", "Traces of unsampled requests with an anomaly, not exported: over the budget.")
}

// admit decides whether the trace id may be exported.
func (b *budget) admit(id trace.TraceID) bool {
	now := time.Now()
	b.mu.Lock()
	switch {
	case b.admitted.has(id):
		b.mu.Unlock()
		return true
	case b.denied.has(id):
		b.mu.Unlock()
		return false
	}
	if !b.last.IsZero() {
		b.tokens = min(b.perSecond, b.tokens+now.Sub(b.last).Seconds()*b.perSecond)
	}
	b.last = now
	ok, count := b.tokens >= 1, b.exported
	if ok {
		b.tokens--
		b.admitted.add(id)
	} else {
		b.refused++
		if b.summary == nil {
			b.firstDrop = now
			b.summary = time.AfterFunc(summaryEvery, b.summarize)
		}
		b.denied.add(id)
		count = b.dropped
	}
	b.mu.Unlock()
	count.Add(context.Background(), 1)
	return ok
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
