package sampling

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/telltale-go/telltale/internal/anomaly"
	"github.com/telltale-go/telltale/internal/instrument"
	"github.com/telltale-go/telltale/internal/version"
	"github.com/telltale-go/telltale/vocab"
)

// budget admits anomaly traces within a budget that is fair to rare
// anomalies, in the manner of a rare sampler. One bucket holds the
// budget: perSecond tokens a second, as deep as a second's worth, so that
// no more than that is ever exported. Its lower half is kept for rare
// anomalies — those not exported in the last second, by their signature:
// route, kind, call site or upstream: a trace of an anomaly exported
// recently is admitted only while the bucket holds more than that half.
// So a flood of one anomaly spends what is above the half, and every
// other anomaly still gets its first trace exported at once, then one a
// second, first in line for the refill. The state per signature is bounded
// and forgets signatures unseen for a while; past the bound, new
// signatures share one state, rare once a second together.
type budget struct {
	perSecond float64
	kept      float64 // the tokens only rare anomalies may take
	logger    *slog.Logger
	exported  metric.Int64Counter
	dropped   metric.Int64Counter

	mu       sync.Mutex
	tokens   float64
	last     time.Time
	sigs     map[anomaly.Signature]*signatureState
	overflow signatureState // the state of the signatures past the bound
	swept    time.Time      // the last sweep of a full map
	summary  *time.Timer    // logs the refused counts
	since    time.Time      // the first refusal the next summary covers
	closed   bool
}

// signatureState is what the budget remembers of one signature.
type signatureState struct {
	lastExport time.Time
	lastSeen   time.Time
	similar    int64 // refused since the last export: the next export says so
	refused    int64 // refused since the last summary
}

const (
	// rareAfter is how long after its last export an anomaly counts as
	// rare again, and may take the tokens kept for rare anomalies.
	rareAfter = time.Second
	// maxSignatures bounds the signatures remembered; forgetAfter is how
	// long one unseen is kept when room is needed.
	maxSignatures = 4096
	forgetAfter   = time.Minute
	// sweepEvery is how often at most a full map is swept for signatures
	// to forget.
	sweepEvery = time.Second
	// summaryEvery is how often at most refusals are logged;
	// summaryLines how many signatures one summary names.
	summaryEvery = 10 * time.Second
	summaryLines = 20
)

func (b *budget) init(cfg config) {
	b.perSecond = float64(cfg.perSecond)
	b.tokens = b.perSecond
	// Half, in whole traces: a budget of one keeps none, a flood and a
	// rare anomaly then share it first come, first served.
	b.kept = float64(cfg.perSecond / 2)
	b.logger = cfg.logger
	b.sigs = make(map[anomaly.Signature]*signatureState)
	m := cfg.meterProvider.Meter(version.SamplingScope, metric.WithInstrumentationVersion(version.Version))
	b.exported = instrument.Counter(m, vocab.MetricAnomalyTracesExported, "{trace}", "Traces of unsampled requests exported because telltale found an anomaly in them, by kind of anomaly.")
	b.dropped = instrument.Counter(m, vocab.MetricAnomalyTracesDropped, "{trace}", "Traces of unsampled requests with an anomaly, not exported: over the budget; by kind of anomaly.")
}

// unknown is the signature of a replay whose request named none.
var unknown = []anomaly.Signature{{Kind: "unknown"}}

// overflowSignature names, in the summary, the signatures past the bound.
var overflowSignature = anomaly.Signature{Kind: "any", Site: "one of the signatures past the 4096 the budget tells apart"}

// admit decides whether a trace with the anomalies sigs is exported, and,
// if it is, how many traces like it were refused since the last export of
// one.
func (b *budget) admit(sigs []anomaly.Signature) (bool, int64) {
	if len(sigs) == 0 {
		sigs = unknown
	}
	now := time.Now()
	b.mu.Lock()
	if !b.last.IsZero() {
		b.tokens = min(b.perSecond, b.tokens+now.Sub(b.last).Seconds()*b.perSecond)
	}
	b.last = now
	var buf [8]*signatureState
	states := buf[:0]
	rare := false
	for _, sig := range sigs {
		st := b.state(sig, now)
		st.lastSeen = now
		states = append(states, st)
		rare = rare || now.Sub(st.lastExport) >= rareAfter
	}
	floor := b.kept
	if rare {
		floor = 0
	}
	ok := b.tokens >= 1+floor
	var similar int64
	if ok {
		b.tokens--
		// How many traces like this one were refused since the last
		// export of one: each refused trace counted once, under every
		// anomaly it had, so the most any of them counts.
		for _, st := range states {
			similar = max(similar, st.similar)
			st.similar, st.lastExport = 0, now
		}
	} else {
		for _, st := range states {
			st.similar++
		}
		states[0].refused++ // the summary counts each trace once, under its first anomaly
		if b.summary == nil && !b.closed {
			b.since = now
			b.summary = time.AfterFunc(summaryEvery, b.summarize)
		}
	}
	b.mu.Unlock()
	count := b.exported
	if !ok {
		count = b.dropped
	}
	count.Add(context.Background(), 1, metric.WithAttributes(attribute.String(vocab.AttrAnomalyKind, string(sigs[0].Kind))))
	return ok, similar
}

// state returns the state of sig, making room for it if needed. b.mu is
// held.
func (b *budget) state(sig anomaly.Signature, now time.Time) *signatureState {
	if st, ok := b.sigs[sig]; ok {
		return st
	}
	if len(b.sigs) >= maxSignatures && now.Sub(b.swept) >= sweepEvery {
		// A signature is forgotten only after forgetAfter unseen: a sweep
		// a second finds all there is to forget, where one per new
		// signature would walk the whole map, under the lock, for each.
		b.swept = now
		for s, st := range b.sigs {
			if now.Sub(st.lastSeen) > forgetAfter && st.refused == 0 {
				delete(b.sigs, s)
			}
		}
	}
	if len(b.sigs) >= maxSignatures {
		return &b.overflow
	}
	st := &signatureState{}
	b.sigs[sig] = st
	return st
}

// summarize logs, for each kind of anomaly refused since the last summary,
// how many traces were refused: they are not in the trace backend.
func (b *budget) summarize() {
	b.mu.Lock()
	type line struct {
		sig     anomaly.Signature
		refused int64
	}
	var lines []line
	for sig, st := range b.sigs {
		if st.refused > 0 {
			lines = append(lines, line{sig, st.refused})
			st.refused = 0
		}
	}
	if b.overflow.refused > 0 {
		lines = append(lines, line{overflowSignature, b.overflow.refused})
		b.overflow.refused = 0
	}
	since := b.since
	b.summary = nil
	b.mu.Unlock()
	if len(lines) == 0 {
		return
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i].refused > lines[j].refused })
	over := time.Since(since).Round(time.Second)
	var more, moreRefused int64
	for i, l := range lines {
		if i >= summaryLines {
			more++
			moreRefused += l.refused
			continue
		}
		b.logger.LogAttrs(context.Background(), slog.LevelWarn,
			"telltale: anomalous requests over the anomaly budget were not exported: their traces are not in the trace backend",
			slog.String("anomaly", l.sig.String()), slog.Int64("refused", l.refused), slog.Duration("over", over),
			slog.Int("budget_per_second", int(b.perSecond)), slog.String("metric", vocab.MetricAnomalyTracesDropped))
	}
	if more > 0 {
		b.logger.LogAttrs(context.Background(), slog.LevelWarn,
			"telltale: anomalous requests of other kinds over the anomaly budget were not exported either",
			slog.Int64("kinds", more), slog.Int64("refused", moreRefused), slog.Duration("over", over))
	}
}

// close stops the summary's timer and logs what it would have logged.
func (b *budget) close() {
	b.mu.Lock()
	b.closed = true
	if b.summary != nil {
		b.summary.Stop()
	}
	b.mu.Unlock()
	b.summarize()
}
