package telemetry

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/sampling"
	"github.com/telltale-go/telltale/vocab"
)

// The telltale events the report counts.
const (
	EventLeaked = vocab.EventBodyLeaked
	EventSlow   = vocab.EventUpstreamSlow
)

// Config configures [NewProvider].
type Config struct {
	// Service is the service.name of the traces.
	Service string
	// Endpoint is the OTLP/HTTP base URL to export to, such as
	// http://127.0.0.1:4318; empty means the OTEL_EXPORTER_OTLP_*
	// environment variables decide.
	Endpoint string
	// SampleRatio is the head sampler's ratio: every provider samples with
	// ParentBased(TraceIDRatioBased(SampleRatio)), 1 keeping every trace.
	SampleRatio float64
	// AnomalyBudget, when positive, builds the provider with telltale's
	// sampling.NewTracerProvider: the same head sampler, plus the traces
	// of unsampled requests in which telltale found an anomaly, at most
	// AnomalyBudget a second. Zero builds a plain sdktrace provider (the
	// naive gateways have no telltale to find anomalies).
	AnomalyBudget int
	// Anomalies, if set with AnomalyBudget, receives the sampler's
	// counters of anomaly traces exported and over the budget.
	Anomalies *AnomalyCounter
	// Logger receives the sampler's warnings; nil means slog.Default().
	Logger *slog.Logger
}

// HeadSampler is the sampler every gateway uses: a trace started by a
// request is kept with probability ratio, and the spans of a request follow
// its parent's decision.
func HeadSampler(ratio float64) sdktrace.Sampler {
	return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))
}

// NewProvider returns a tracer provider that samples and exports as cfg
// says, and the [Recorder] registered on it. The recorder sees what the
// provider records, which is what it exports: the spans of sampled
// requests and, with cfg.AnomalyBudget, the spans telltale replays. Shut
// the provider down to flush it.
func NewProvider(ctx context.Context, cfg Config) (*sdktrace.TracerProvider, *Recorder, error) {
	var opts []otlptracehttp.Option
	if cfg.Endpoint != "" {
		// Endpoint is a base URL, like OTEL_EXPORTER_OTLP_ENDPOINT: the
		// signal's path is appended (WithEndpointURL would use it as is).
		u, err := ParseEndpoint(cfg.Endpoint)
		if err != nil {
			return nil, nil, err
		}
		opts = append(opts, otlptracehttp.WithEndpoint(u.Host), otlptracehttp.WithURLPath(strings.TrimSuffix(u.Path, "/")+"/v1/traces"))
		if u.Scheme == "http" {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("telemetry: OTLP exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(cfg.Service)))
	if err != nil {
		return nil, nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	rec := NewRecorder()
	tpOpts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSpanProcessor(rec),
		// A short batch timeout so traces reach Jaeger while the demo runs.
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(500*time.Millisecond)),
	}
	head := HeadSampler(cfg.SampleRatio)
	if cfg.AnomalyBudget <= 0 {
		return sdktrace.NewTracerProvider(append(tpOpts, sdktrace.WithSampler(head))...), rec, nil
	}
	tpOpts = append(tpOpts, sampling.WithBudget(cfg.AnomalyBudget), sampling.WithLogger(cfg.Logger))
	if cfg.Anomalies != nil {
		tpOpts = append(tpOpts, sampling.WithMeterProvider(cfg.Anomalies.provider))
	}
	// telltale's set-up line: the head sampler unchanged, the anomalies of
	// the requests it drops exported within the budget.
	return sampling.NewTracerProvider(head, tpOpts...), rec, nil
}

// ParseEndpoint checks an OTLP/HTTP base URL such as http://127.0.0.1:4318.
func ParseEndpoint(endpoint string) (*url.URL, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("telemetry: OTLP endpoint %q: want an OTLP/HTTP base URL like http://127.0.0.1:4318", endpoint)
	}
	return u, nil
}

// Finding is one telltale event seen on an ended span.
type Finding struct {
	// Seq numbers findings in the order they were seen, from 1.
	Seq int64 `json:"seq"`
	// Event is the event name, [EventLeaked] or [EventSlow].
	Event string `json:"event"`
	// TraceID is the trace to open in Jaeger.
	TraceID string `json:"trace_id"`
	// Span is the name of the span that holds the event.
	Span string `json:"span"`
	// Attrs are the event's attributes, as strings.
	Attrs map[string]string `json:"attrs"`
}

// Snapshot is what a [Recorder] has seen so far.
type Snapshot struct {
	// ClientStarted and ClientEnded count client spans. A client span that
	// never ends is never exported: the gap is what Jaeger cannot show.
	ClientStarted int64 `json:"client_started"`
	ClientEnded   int64 `json:"client_ended"`
	// Events counts telltale events on client spans by name.
	Events map[string]int64 `json:"events"`
	// ErrorTypes counts ended client spans by their error.type attribute.
	ErrorTypes map[string]int64 `json:"error_types"`
	// Findings holds the first findings seen after the Seq asked for,
	// at most [MaxFindings].
	Findings []Finding `json:"findings"`
	// LastSeq is the Seq of the newest finding.
	LastSeq int64 `json:"last_seq"`
	// Overruns counts the server spans of handlers that ran past their
	// deadline (telltale.deadline.overrun_ms); OverrunMax is the largest
	// overrun among those after the count asked for.
	Overruns   int64         `json:"overruns"`
	OverrunMax time.Duration `json:"overrun_max_ns"`
	// Servers counts the ended server spans.
	Servers ServerCounts `json:"servers"`
}

// ServerCounts count ended server spans: what a service exported of the
// requests it served.
type ServerCounts struct {
	// Ended counts them all; Replayed those telltale exported after the
	// fact (telltale.replayed), Anomalous those marked telltale.anomaly.
	Ended     int64 `json:"ended"`
	Replayed  int64 `json:"replayed"`
	Anomalous int64 `json:"anomalous"`
	// Status counts them by http.response.status_code.
	Status map[string]int64 `json:"status"`
	// Marks counts the telltale findings on them, by event name
	// (telltale.request.slow, telltale.anomaly) or attribute key
	// (telltale.deadline.exceeded, telltale.deadline.overrun_ms,
	// telltale.client_gone.at_deadline, telltale.degraded).
	Marks map[string]int64 `json:"marks"`
}

// Sub returns what c counted since before.
func (c ServerCounts) Sub(before ServerCounts) ServerCounts {
	return ServerCounts{
		Ended:     c.Ended - before.Ended,
		Replayed:  c.Replayed - before.Replayed,
		Anomalous: c.Anomalous - before.Anomalous,
		Status:    Diff(c.Status, before.Status),
		Marks:     Diff(c.Marks, before.Marks),
	}
}

// Diff returns the counts of now that grew since before, by how much.
func Diff(now, before map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range now {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// serverMarks are the attributes of a server span the report counts, when
// true or set.
var serverMarks = []string{vocab.AttrDeadlineExceeded, vocab.AttrDeadlineOverrun, vocab.AttrCallerGaveUp, vocab.AttrDegraded}

// TraceSpans is what a service exported of one trace: how many spans, and
// whether one of them was marked telltale.anomaly.
type TraceSpans struct {
	Spans     int  `json:"spans"`
	Anomalous bool `json:"anomalous,omitempty"`
}

// maxTraces bounds the traces a [Recorder] keeps between two
// [Recorder.DrainTraces]; the spans of others are not counted.
const maxTraces = 100_000

// MaxFindings bounds how many findings a [Snapshot] carries.
const MaxFindings = 200

// keptFindings bounds the findings a [Recorder] keeps; the oldest go first.
const keptFindings = 4096

// Recorder is an sdktrace.SpanProcessor that counts client spans started and
// ended, error types, and telltale's events. It exports nothing itself.
type Recorder struct {
	mu         sync.Mutex
	started    int64
	ended      int64
	events     map[string]int64
	errorTypes map[string]int64
	seq        int64
	findings   []Finding
	overruns   int64
	recent     []overrun // the latest overruns, oldest first
	servers    ServerCounts
	traces     map[trace.TraceID]TraceSpans // since the last DrainTraces
}

// overrun is the overrun of the n-th server span that had one.
type overrun struct {
	n int64
	d time.Duration
}

// NewRecorder returns an empty [Recorder].
func NewRecorder() *Recorder {
	return &Recorder{
		events:     map[string]int64{},
		errorTypes: map[string]int64{},
		servers:    ServerCounts{Status: map[string]int64{}, Marks: map[string]int64{}},
		traces:     map[trace.TraceID]TraceSpans{},
	}
}

// OnStart counts client spans.
func (r *Recorder) OnStart(_ context.Context, s sdktrace.ReadWriteSpan) {
	if s.SpanKind() != trace.SpanKindClient {
		return
	}
	r.mu.Lock()
	r.started++
	r.mu.Unlock()
}

// OnEnd counts ended client spans, their error types, and the telltale
// events on them; the server spans, those that overran their deadline; and
// every span by trace.
func (r *Recorder) OnEnd(s sdktrace.ReadOnlySpan) {
	r.traceEnded(s)
	if s.SpanKind() == trace.SpanKindServer {
		r.serverEnded(s)
		return
	}
	if s.SpanKind() != trace.SpanKindClient {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended++
	for _, kv := range s.Attributes() {
		if kv.Key == "error.type" {
			r.errorTypes[kv.Value.String()]++
		}
	}
	for _, ev := range s.Events() {
		if ev.Name != EventLeaked && ev.Name != EventSlow {
			continue
		}
		r.events[ev.Name]++
		if len(r.findings) == keptFindings {
			r.findings = slices.Delete(r.findings, 0, keptFindings/2)
		}
		r.seq++
		r.findings = append(r.findings, Finding{
			Seq:     r.seq,
			Event:   ev.Name,
			TraceID: s.SpanContext().TraceID().String(),
			Span:    s.Name(),
			Attrs:   attrs(ev.Attributes),
		})
	}
}

// traceEnded counts s in its trace.
func (r *Recorder) traceEnded(s sdktrace.ReadOnlySpan) {
	anomalous := false
	for _, kv := range s.Attributes() {
		if kv.Key == vocab.AttrAnomaly && kv.Value.AsBool() {
			anomalous = true
		}
	}
	id := s.SpanContext().TraceID()
	r.mu.Lock()
	defer r.mu.Unlock()
	ts, ok := r.traces[id]
	if !ok && len(r.traces) >= maxTraces {
		return
	}
	ts.Spans++
	ts.Anomalous = ts.Anomalous || anomalous
	r.traces[id] = ts
}

// serverEnded counts a server span, its status, its findings and its
// overrun. Only client spans count events as findings: the middleware
// repeats leak events on the server span, which would count each leak
// twice.
func (r *Recorder) serverEnded(s sdktrace.ReadOnlySpan) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := &r.servers
	c.Ended++
	for _, kv := range s.Attributes() {
		switch {
		case kv.Key == vocab.AttrReplayed && kv.Value.AsBool():
			c.Replayed++
		case kv.Key == vocab.AttrAnomaly && kv.Value.AsBool():
			c.Anomalous++
		case kv.Key == "http.response.status_code":
			c.Status[kv.Value.Emit()]++
		case slices.Contains(serverMarks, string(kv.Key)) && (kv.Value.Type() != attribute.BOOL || kv.Value.AsBool()):
			c.Marks[string(kv.Key)]++
		}
		if kv.Key != vocab.AttrDeadlineOverrun {
			continue
		}
		// Whole milliseconds, an int64, as every telltale duration.
		d := time.Duration(kv.Value.AsInt64()) * time.Millisecond
		if len(r.recent) == keptFindings {
			r.recent = slices.Delete(r.recent, 0, keptFindings/2)
		}
		r.overruns++
		r.recent = append(r.recent, overrun{r.overruns, d})
	}
	for _, ev := range s.Events() {
		if ev.Name == vocab.EventRequestSlow || ev.Name == vocab.EventAnomaly {
			c.Marks[ev.Name]++
		}
	}
}

// DrainTraces returns the spans ended since the previous call, by trace
// id, and forgets them.
func (r *Recorder) DrainTraces() map[string]TraceSpans {
	r.mu.Lock()
	traces := r.traces
	r.traces = map[trace.TraceID]TraceSpans{}
	r.mu.Unlock()
	out := make(map[string]TraceSpans, len(traces))
	for id, ts := range traces {
		out[id.String()] = ts
	}
	return out
}

// Snapshot returns the counters, up to [MaxFindings] findings newer than
// since, and the largest overrun after the overrunsSince-th.
func (r *Recorder) Snapshot(since, overrunsSince int64) Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	snap := Snapshot{
		ClientStarted: r.started,
		ClientEnded:   r.ended,
		Events:        clone(r.events),
		ErrorTypes:    clone(r.errorTypes),
		LastSeq:       r.seq,
		Overruns:      r.overruns,
		Servers: ServerCounts{
			Ended:     r.servers.Ended,
			Replayed:  r.servers.Replayed,
			Anomalous: r.servers.Anomalous,
			Status:    clone(r.servers.Status),
			Marks:     clone(r.servers.Marks),
		},
	}
	for _, o := range r.recent {
		if o.n > overrunsSince {
			snap.OverrunMax = max(snap.OverrunMax, o.d)
		}
	}
	i, _ := slices.BinarySearchFunc(r.findings, since+1, func(f Finding, seq int64) int { return int(f.Seq - seq) })
	end := min(len(r.findings), i+MaxFindings)
	snap.Findings = slices.Clone(r.findings[i:end])
	return snap
}

// Shutdown does nothing: the recorder holds no resources.
func (r *Recorder) Shutdown(context.Context) error { return nil }

// ForceFlush does nothing: the recorder exports nothing.
func (r *Recorder) ForceFlush(context.Context) error { return nil }

func attrs(kvs []attribute.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value.String()
	}
	return m
}

func clone(m map[string]int64) map[string]int64 {
	c := make(map[string]int64, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
