package sampling_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

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

func newEnv(t *testing.T, opts ...sampling.Option) *env {
	t.Helper()
	e := &env{rec: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader(), logs: &syncBuffer{}}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(e.reader))
	opts = append([]sampling.Option{sampling.WithMeterProvider(mp), sampling.WithLogger(slog.New(slog.NewTextHandler(e.logs, nil)))}, opts...)
	e.tp = sampling.NewTracerProvider(sampling.Sampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0)), opts...),
		sdktrace.WithSpanProcessor(e.rec))
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
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				var n int64
				for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
					n += dp.Value
				}
				return n
			}
		}
	}
	return 0
}

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
	for _, sc := range []struct{ parent, self trace.SpanContext }{{trace.SpanContext{}, root}, {root, child}} {
		span, outcome := anomaly.Start(tracer, sc.parent, sc.self, "replayed", trace.WithTimestamp(start))
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

// Past the budget, whole traces are refused — every span of a refused
// trace, however late it comes — counted, and summed up in one log line.
func TestBudgetRefusesWholeTraces(t *testing.T) {
	e := newEnv(t, sampling.WithBudget(2))
	tracer := e.tp.Tracer("replay")
	var traces []trace.SpanContext
	for range 5 {
		traces = append(traces, dropped(t, e.tp, context.Background()))
	}
	exported := 0
	for _, root := range traces {
		span, outcome := anomaly.Start(tracer, trace.SpanContext{}, root, "server")
		if outcome == anomaly.Recorded {
			exported++
			span.End()
		}
	}
	if exported != 2 {
		t.Errorf("%d traces exported with a budget of 2", exported)
	}
	// A late span of each trace gets its trace's decision.
	for i, root := range traces {
		child := dropped(t, e.tp, trace.ContextWithSpanContext(context.Background(), root))
		span, outcome := anomaly.Start(tracer, root, child, "late")
		if (outcome == anomaly.Recorded) != (i < 2) {
			t.Errorf("trace %d: late span %v, want the trace's own decision", i, outcome)
		}
		if span != nil {
			span.End()
		}
	}
	if got := e.counter(t, vocab.MetricAnomalyTracesDropped); got != 3 {
		t.Errorf("%s = %d, want 3", vocab.MetricAnomalyTracesDropped, got)
	}
}

// The budget refills with time.
func TestBudgetRefills(t *testing.T) {
	e := newEnv(t, sampling.WithBudget(100))
	tracer := e.tp.Tracer("replay")
	admit := func() bool {
		span, outcome := anomaly.Start(tracer, trace.SpanContext{}, dropped(t, e.tp, context.Background()), "s")
		if span != nil {
			span.End()
		}
		return outcome == anomaly.Recorded
	}
	n := 0
	for range 200 {
		if admit() {
			n++
		}
	}
	if n < 100 || n > 110 {
		t.Errorf("%d of 200 admitted at once with a budget of 100", n)
	}
	time.Sleep(50 * time.Millisecond) // about 5 tokens
	if !admit() {
		t.Error("nothing admitted after the budget refilled")
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
		if _, outcome := anomaly.Start(tp.Tracer("r"), trace.SpanContext{}, dropped(t, tp, context.Background()), "s"); outcome != anomaly.Refused {
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
	if _, outcome := anomaly.Start(tp.Tracer("r"), trace.SpanContext{}, dropped(t, tp, context.Background()), "s"); outcome != anomaly.NoSampler {
		t.Errorf("outcome %v, want NoSampler", outcome)
	}
	if len(rec.Ended()) != 0 {
		t.Error("exported")
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

// A trace admitted before an outage keeps its late spans admitted however
// many anomalous traces the outage brings after it.
func TestAdmittedTraceOutlivesAnOutage(t *testing.T) {
	e := newEnv(t, sampling.WithBudget(10))
	tracer := e.tp.Tracer("replay")
	first := dropped(t, e.tp, context.Background())
	span, o := anomaly.Start(tracer, trace.SpanContext{}, first, "server")
	if o != anomaly.Recorded {
		t.Fatal(o)
	}
	span.End()
	for range 5000 { // the outage: refused, over the budget
		if s, _ := anomaly.Start(tracer, trace.SpanContext{}, dropped(t, e.tp, context.Background()), "server"); s != nil {
			s.End()
		}
	}
	child := dropped(t, e.tp, trace.ContextWithSpanContext(context.Background(), first))
	if s, o := anomaly.Start(tracer, first, child, "late leak"); o != anomaly.Recorded {
		t.Errorf("a late span of an admitted trace, after an outage: %v", o)
	} else {
		s.End()
	}
}
