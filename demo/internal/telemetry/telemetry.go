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
	sopts := []sampling.Option{sampling.WithBudget(cfg.AnomalyBudget), sampling.WithLogger(cfg.Logger)}
	if cfg.Anomalies != nil {
		sopts = append(sopts, sampling.WithMeterProvider(cfg.Anomalies.provider))
	}
	// telltale's set-up line: the head sampler unchanged, the anomalies of
	// the requests it drops exported within the budget.
	return sampling.NewTracerProvider(sampling.Sampler(head, sopts...), tpOpts...), rec, nil
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
}

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
}

// overrun is the overrun of the n-th server span that had one.
type overrun struct {
	n int64
	d time.Duration
}

// NewRecorder returns an empty [Recorder].
func NewRecorder() *Recorder {
	return &Recorder{events: map[string]int64{}, errorTypes: map[string]int64{}}
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
// events on them; and the server spans that overran their deadline.
func (r *Recorder) OnEnd(s sdktrace.ReadOnlySpan) {
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

// serverEnded counts a server span's overrun. Only client spans count
// events: the middleware repeats leak events on the server span, which
// would count each leak twice.
func (r *Recorder) serverEnded(s sdktrace.ReadOnlySpan) {
	for _, kv := range s.Attributes() {
		if kv.Key != vocab.AttrDeadlineOverrun {
			continue
		}
		d := time.Duration(kv.Value.AsFloat64() * float64(time.Millisecond))
		r.mu.Lock()
		if len(r.recent) == keptFindings {
			r.recent = slices.Delete(r.recent, 0, keptFindings/2)
		}
		r.overruns++
		r.recent = append(r.recent, overrun{r.overruns, d})
		r.mu.Unlock()
		return
	}
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
