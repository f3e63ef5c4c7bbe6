package sampling_test

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/telltale-go/telltale/internal/anomaly"
	"github.com/telltale-go/telltale/internal/testkit"
	"github.com/telltale-go/telltale/sampling"
	"github.com/telltale-go/telltale/vocab"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// dropped is a span the head sampler dropped, as the SDK makes it: real
// ids, not recording.
func dropped(t *testing.T, tp trace.TracerProvider, parent context.Context) trace.SpanContext {
	t.Helper()
	_, span := tp.Tracer("test").Start(parent, "dropped")
	if span.IsRecording() {
		t.Fatal("the head sampler recorded the span")
	}
	return span.SpanContext()
}

type env struct {
	tp     *sdktrace.TracerProvider
	rec    *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
	logs   *syncBuffer
}

// newEnv is a provider built as the README says, sampling nothing at the
// head, with the sampling options given among the SDK's.
func newEnv(t *testing.T, opts ...sdktrace.TracerProviderOption) *env {
	t.Helper()
	e := &env{rec: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader(), logs: &syncBuffer{}}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(e.reader))
	all := append([]sdktrace.TracerProviderOption{
		sampling.WithMeterProvider(mp),
		sampling.WithLogger(slog.New(slog.NewTextHandler(e.logs, nil))),
		sdktrace.WithSpanProcessor(e.rec),
	}, opts...)
	e.tp = sampling.NewTracerProvider(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0)), all...)
	t.Cleanup(func() {
		_ = e.tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	return e
}

func (e *env) counter(t *testing.T, name string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := e.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
					n += dp.Value
				}
			}
		}
	}
	return n
}

// replay replays one root span of a new unsampled request with the
// anomaly sig, and reports whether it was exported.
func (e *env) replay(t *testing.T, sig anomaly.Signature) bool {
	t.Helper()
	span, outcome := anomaly.Start(e.tp.Tracer("replay"), nil, anomaly.NewDecision(sig), trace.SpanContext{}, dropped(t, e.tp, context.Background()), "server")
	if span != nil {
		span.End()
	}
	return outcome == anomaly.Recorded
}

var leak = anomaly.Signature{Route: "GET /api/count", Kind: anomaly.KindLeak, Site: "count.go:12"}

// The head sampler's decisions stand for every ordinary span; a replayed
// span is exported with the ids, parent and start time it had.
func TestReplayedSpansKeepTheirIdentity(t *testing.T) {
	e := newEnv(t)
	root := dropped(t, e.tp, context.Background())
	child := dropped(t, e.tp, trace.ContextWithSpanContext(context.Background(), root))
	if len(e.rec.Ended()) != 0 {
		t.Fatal("ordinary unsampled spans were exported")
	}
	start := time.Now().Add(-time.Second)
	tracer := e.tp.Tracer("replay")
	d := anomaly.NewDecision(leak)
	for _, sc := range []struct{ parent, self trace.SpanContext }{{trace.SpanContext{}, root}, {root, child}} {
		span, outcome := anomaly.Start(tracer, nil, d, sc.parent, sc.self, "replayed", trace.WithTimestamp(start))
		if outcome != anomaly.Recorded {
			t.Fatalf("outcome %v", outcome)
		}
		span.End()
	}
	spans := e.rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans exported", len(spans))
	}
	if spans[0].SpanContext().SpanID() != root.SpanID() || spans[0].SpanContext().TraceID() != root.TraceID() || spans[0].Parent().IsValid() {
		t.Errorf("root replayed as %v (parent %v), want %v", spans[0].SpanContext(), spans[0].Parent(), root)
	}
	if spans[1].SpanContext().SpanID() != child.SpanID() || spans[1].Parent().SpanID() != root.SpanID() {
		t.Errorf("child replayed as %v under %v", spans[1].SpanContext(), spans[1].Parent())
	}
	if !spans[0].StartTime().Equal(start) || !spans[0].SpanContext().IsSampled() {
		t.Errorf("start %v, sampled %v", spans[0].StartTime(), spans[0].SpanContext().IsSampled())
	}
	if got := e.counter(t, vocab.MetricAnomalyTracesExported); got != 1 {
		t.Errorf("%s = %d, want 1 trace", vocab.MetricAnomalyTracesExported, got)
	}
}

// A request is decided once: every span of a refused request is refused,
// however late it comes and however many traces were decided meanwhile,
// and counted once; every span of an admitted one is admitted.
func TestARequestIsDecidedOnce(t *testing.T) {
	e := newEnv(t, sampling.WithBudget(4))
	tracer := e.tp.Tracer("replay")
	type request struct {
		root trace.SpanContext
		d    *anomaly.Decision
	}
	var requests []request
	exported := 0
	for range 4 {
		r := request{dropped(t, e.tp, context.Background()), anomaly.NewDecision(leak)}
		requests = append(requests, r)
		if span, o := anomaly.Start(tracer, nil, r.d, trace.SpanContext{}, r.root, "server"); o == anomaly.Recorded {
			exported++
			span.End()
		}
	}
	// 2 of the budget of 4: the first, rare, and the second, above the
	// half kept for rare anomalies; the third is refused: the anomaly was
	// exported less than a second ago, so the kept half does not admit it.
	if exported != 2 {
		t.Fatalf("%d of 4 requests exported with a budget of 4", exported)
	}
	for range 10_000 { // an outage: many other anomalous traces
		e.replay(t, leak)
	}
	for i, r := range requests {
		child := dropped(t, e.tp, trace.ContextWithSpanContext(context.Background(), r.root))
		span, o := anomaly.Start(tracer, nil, r.d, r.root, child, "late")
		if (o == anomaly.Recorded) != (i < 2) {
			t.Errorf("request %d: late span %v, want its request's decision", i, o)
		}
		if span != nil {
			span.End()
		}
	}
	decided := int64(len(requests) + 10_000) // the late spans decide nothing
	if got, want := e.counter(t, vocab.MetricAnomalyTracesDropped), decided-e.counter(t, vocab.MetricAnomalyTracesExported); got != want {
		t.Errorf("%s = %d, want %d: each refused request once", vocab.MetricAnomalyTracesDropped, got, want)
	}
}

// A flood of one anomaly spends the budget; a rare, different one still
// has its first trace exported at once, and the next export of the flood
// says how many like it were refused.
func TestBudgetIsFairToRareAnomalies(t *testing.T) {
	e := newEnv(t, sampling.WithBudget(2))
	flood := 0
	for range 300 {
		if e.replay(t, leak) {
			flood++
		}
	}
	rare := anomaly.Signature{Route: "GET /api/feed", Kind: anomaly.KindServerError, Site: "http_500"}
	if !e.replay(t, rare) {
		t.Error("a rare anomaly was refused during a flood of another")
	}
	if flood > 4 {
		t.Errorf("%d of 300 flood traces exported with a budget of 2 a second", flood)
	}
	time.Sleep(1100 * time.Millisecond) // the flood's anomaly is rare again, the bucket refilled
	tracer := e.tp.Tracer("replay")
	d := anomaly.NewDecision(leak)
	span, o := anomaly.Start(tracer, nil, d, trace.SpanContext{}, dropped(t, e.tp, context.Background()), "server")
	if o != anomaly.Recorded {
		t.Fatalf("the flood's anomaly, a second later: %v", o)
	}
	span.End()
	if got := d.SimilarRefused(); got != int64(300-flood) {
		t.Errorf("similar refused = %d, want %d", got, 300-flood)
	}
}

// The budget is a ceiling: an outage on 40 routes at once, every one of
// them rare in turn, exports no more than the budget a second, its burst
// of one second's worth aside.
func TestBudgetIsACeiling(t *testing.T) {
	e := newEnv(t, sampling.WithBudget(10))
	start := time.Now()
	admitted := 0
	for time.Since(start) < 2*time.Second {
		for i := range 40 {
			if e.replay(t, anomaly.Signature{Route: fmt.Sprintf("GET /r%d", i), Kind: anomaly.KindServerError, Site: "500"}) {
				admitted++
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(start)
	t.Logf("%d of the outage's traces exported in %s with WithBudget(10)", admitted, elapsed.Round(time.Millisecond))
	if limit := int(10*elapsed.Seconds()) + 10 + 1; admitted > limit {
		t.Errorf("%d exported in %s with a budget of 10 a second: over %d", admitted, elapsed, limit)
	}
}

// A trace refused with several anomalies at once (a 504: the deadline, the
// 5xx, the upstream that failed) counts once in the next export's
// similar_refused.
func TestSimilarRefusedCountsEachTraceOnce(t *testing.T) {
	e := newEnv(t, sampling.WithBudget(1))
	sigs := []anomaly.Signature{
		{Route: "GET /feed", Kind: anomaly.KindDeadline},
		{Route: "GET /feed", Kind: anomaly.KindServerError, Site: "504"},
		{Route: "GET /feed", Kind: anomaly.KindUpstreamFailed, Site: "ads"},
	}
	tracer := e.tp.Tracer("replay")
	refused := 0
	for range 10 {
		span, o := anomaly.Start(tracer, nil, anomaly.NewDecision(sigs...), trace.SpanContext{}, dropped(t, e.tp, context.Background()), "s")
		if o == anomaly.Refused {
			refused++
		} else if span != nil {
			span.End()
		}
	}
	time.Sleep(1100 * time.Millisecond)
	d := anomaly.NewDecision(sigs...)
	span, o := anomaly.Start(tracer, nil, d, trace.SpanContext{}, dropped(t, e.tp, context.Background()), "s")
	if o != anomaly.Recorded {
		t.Fatal(o)
	}
	span.End()
	if refused != 9 || d.SimilarRefused() != int64(refused) {
		t.Errorf("similar refused = %d, and %d traces like it were refused (want 9)", d.SimilarRefused(), refused)
	}
}

// Past the 4096 signatures the budget tells apart, new ones share one
// state: a flood of distinct anomalies (reasons with ids in them) is rare
// once a second together, and cannot spend the half kept for the rare
// anomalies it remembers.
func TestTooManySignaturesCannotSpendTheKeptHalf(t *testing.T) {
	e := newEnv(t, sampling.WithBudget(10))
	for i := range 4096 {
		e.replay(t, anomaly.Signature{Route: "GET /r", Kind: anomaly.KindReported, Site: fmt.Sprint("known ", i)})
	}
	time.Sleep(1100 * time.Millisecond) // the bucket refilled; every known anomaly is rare again
	overflow := 0
	for i := range 20 {
		if e.replay(t, anomaly.Signature{Route: "GET /r", Kind: anomaly.KindReported, Site: fmt.Sprint("new ", i)}) {
			overflow++
		}
	}
	if overflow > 5 {
		t.Errorf("%d of 20 new anomalies past the bound admitted with a budget of 10: they spent the kept half", overflow)
	}
	if !e.replay(t, anomaly.Signature{Route: "GET /r", Kind: anomaly.KindReported, Site: "known 7"}) {
		t.Error("a remembered rare anomaly was refused after a flood of new ones past the bound")
	}
}

// Refusals are summed up per kind of anomaly, in one log line each, saying
// that those traces are not in the trace backend; the provider's Shutdown
// writes the last summary.
func TestRefusalsAreSummarisedPerAnomaly(t *testing.T) {
	e := newEnv(t, sampling.WithBudget(1))
	other := anomaly.Signature{Route: "GET /api/feed", Kind: anomaly.KindDeadline}
	for range 50 {
		e.replay(t, leak)
		e.replay(t, other)
	}
	if err := e.tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	logs := e.logs.String()
	if n := strings.Count(logs, "not in the trace backend"); n != 2 {
		t.Fatalf("%d summary lines, want one per anomaly:\n%s", n, logs)
	}
	for _, want := range []string{leak.String(), other.String()} {
		if !strings.Contains(logs, want) {
			t.Errorf("the summary does not name %q:\n%s", want, logs)
		}
	}
	if !strings.Contains(logs, "refused=49") {
		t.Errorf("the summary does not count 49 refused of each:\n%s", logs)
	}
}

// The budget refills with time.
func TestBudgetRefills(t *testing.T) {
	e := newEnv(t, sampling.WithBudget(100))
	n := 0
	for range 200 {
		if e.replay(t, leak) {
			n++
		}
	}
	// The first, rare, and the 49 above the half kept for rare anomalies.
	if n < 50 || n > 55 {
		t.Errorf("%d of 200 admitted at once with a budget of 100", n)
	}
	time.Sleep(50 * time.Millisecond) // about 5 tokens, above the kept half
	if !e.replay(t, leak) {
		t.Error("nothing admitted after the budget refilled")
	}
}

// The sampler's options go to NewTracerProvider among the SDK's, as the
// README's set-up shows; given to another constructor, they say they have
// no effect.
func TestOptionsGoToNewTracerProvider(t *testing.T) {
	tp := sampling.NewTracerProvider(sdktrace.NeverSample(), sampling.WithBudget(50), sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder()))
	defer tp.Shutdown(context.Background())
	tracer := tp.Tracer("replay")
	admitted := 0
	for i := range 60 {
		sig := anomaly.Signature{Kind: anomaly.KindLeak, Site: fmt.Sprint(i % 1)}
		if span, o := anomaly.Start(tracer, nil, anomaly.NewDecision(sig), trace.SpanContext{}, dropped(t, tp, context.Background()), "s"); o == anomaly.Recorded {
			admitted++
			span.End()
		}
	}
	// Half of it, the other half kept for anomalies not seen in the last
	// second.
	if admitted < 25 || admitted > 27 {
		t.Errorf("%d of 60 admitted with WithBudget(50)", admitted)
	}

	logs := &syncBuffer{}
	defer testkit.SetDefaultLogger(slog.New(slog.NewTextHandler(logs, nil)))()
	plain := sdktrace.NewTracerProvider(sampling.WithBudget(5))
	defer plain.Shutdown(context.Background())
	_, span := plain.Tracer("t").Start(context.Background(), "s")
	span.End()
	if !strings.Contains(logs.String(), "sampling.WithBudget") {
		t.Errorf("an option given to sdktrace.NewTracerProvider did not say it has no effect:\n%s", logs)
	}
}

// Without the ID generator, replayed spans would not keep their ids: they
// are refused, and that is logged once.
func TestSamplerWithoutIDGenerator(t *testing.T) {
	logs := &syncBuffer{}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec),
		sdktrace.WithSampler(sampling.Sampler(sdktrace.NeverSample(), sampling.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))))
	defer tp.Shutdown(context.Background())
	for range 3 {
		if _, outcome := anomaly.Start(tp.Tracer("r"), nil, nil, trace.SpanContext{}, dropped(t, tp, context.Background()), "s"); outcome != anomaly.Refused {
			t.Errorf("outcome %v, want refused", outcome)
		}
	}
	if n := strings.Count(logs.String(), "sampling.IDGenerator"); n != 1 {
		t.Errorf("logged %d times:\n%s", n, logs)
	}
}

// With a provider whose sampler is not telltale's, a replay is not
// exported, and the caller learns that no telltale sampler decided.
func TestReplayWithoutTelltalesSampler(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sdktrace.NeverSample()))
	defer tp.Shutdown(context.Background())
	if _, outcome := anomaly.Start(tp.Tracer("r"), nil, nil, trace.SpanContext{}, dropped(t, tp, context.Background()), "s"); outcome != anomaly.NoSampler {
		t.Errorf("outcome %v, want NoSampler", outcome)
	}
	if len(rec.Ended()) != 0 {
		t.Error("exported")
	}
}

// A replayed span's kind of anomaly labels the sampler's metrics.
func TestMetricsCountByKind(t *testing.T) {
	e := newEnv(t, sampling.WithBudget(1))
	e.replay(t, leak)
	e.replay(t, leak)
	var rm metricdata.ResourceMetrics
	if err := e.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				if v, ok := dp.Attributes.Value(attribute.Key(vocab.AttrAnomalyKind)); ok && v.AsString() == string(anomaly.KindLeak) {
					found++
				}
			}
		}
	}
	if found != 2 {
		t.Errorf("%d data points labelled with the kind, want exported and dropped", found)
	}
}

// IDGenerator leaves ordinary spans to the generator it wraps.
func TestIDGeneratorDelegates(t *testing.T) {
	g := sampling.IDGenerator(fixedIDs{})
	tid, sid := g.NewIDs(context.Background())
	if tid != (trace.TraceID{1}) || sid != (trace.SpanID{2}) || g.NewSpanID(context.Background(), tid) != (trace.SpanID{3}) {
		t.Error("the wrapped generator was not used")
	}
	own := sampling.IDGenerator(nil)
	a, _ := own.NewIDs(context.Background())
	b, _ := own.NewIDs(context.Background())
	if !a.IsValid() || a == b {
		t.Errorf("random ids %v, %v", a, b)
	}
}

type fixedIDs struct{}

func (fixedIDs) NewIDs(context.Context) (trace.TraceID, trace.SpanID) {
	return trace.TraceID{1}, trace.SpanID{2}
}
func (fixedIDs) NewSpanID(context.Context, trace.TraceID) trace.SpanID { return trace.SpanID{3} }

type syncBuffer = testkit.SyncBuffer

// The decision of a new anomaly when the budget already tells apart all
// the signatures it can (ids in ReportAnomaly reasons, in a flood): what
// each replay's first span costs under the budget's lock.
func BenchmarkDecideNewSignaturePastTheBound(b *testing.B) {
	tp := sampling.NewTracerProvider(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0)), sampling.WithBudget(10),
		sampling.WithLogger(slog.New(slog.DiscardHandler)))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tracer := tp.Tracer("replay")
	root := trace.NewSpanContext(trace.SpanContextConfig{TraceID: anomaly.RandomTraceID(), SpanID: anomaly.RandomSpanID()})
	decide := func(i int) {
		sig := anomaly.Signature{Route: "GET /r", Kind: anomaly.KindReported, Site: strconv.Itoa(i)}
		if span, _ := anomaly.Start(tracer, nil, anomaly.NewDecision(sig), trace.SpanContext{}, root, "s"); span != nil {
			span.End()
		}
	}
	for i := range 4096 {
		decide(i)
	}
	i := 4096
	for b.Loop() {
		decide(i)
		i++
	}
}
