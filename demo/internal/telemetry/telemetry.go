package telemetry

import (
	"context"
	"fmt"
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

	"github.com/telltale-go/telltale/vocab"
)

// The telltale events the report counts.
const (
	EventLeaked = vocab.EventBodyLeaked
	EventSlow   = vocab.EventUpstreamSlow
)

// NewProvider returns a tracer provider for service that exports over
// OTLP/HTTP to endpoint (a URL such as http://127.0.0.1:4318; empty means the
// OTEL_EXPORTER_OTLP_* environment variables decide), and the [Recorder]
// registered on it. Shut the provider down to flush it.
func NewProvider(ctx context.Context, service, endpoint string) (*sdktrace.TracerProvider, *Recorder, error) {
	var opts []otlptracehttp.Option
	if endpoint != "" {
		// endpoint is a base URL, like OTEL_EXPORTER_OTLP_ENDPOINT: the
		// signal's path is appended (WithEndpointURL would use it as is).
		u, err := ParseEndpoint(endpoint)
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
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(service)))
	if err != nil {
		return nil, nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	rec := NewRecorder()
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithSpanProcessor(rec),
		// A short batch timeout so traces reach Jaeger while the demo runs.
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(500*time.Millisecond)),
	)
	return tp, rec, nil
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
// events on them.
func (r *Recorder) OnEnd(s sdktrace.ReadOnlySpan) {
	if s.SpanKind() != trace.SpanKindClient {
		// Only client spans: the middleware repeats leak events on the
		// server span, which would count each leak twice.
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

// Snapshot returns the counters and up to [MaxFindings] findings newer than
// since.
func (r *Recorder) Snapshot(since int64) Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	snap := Snapshot{
		ClientStarted: r.started,
		ClientEnded:   r.ended,
		Events:        clone(r.events),
		ErrorTypes:    clone(r.errorTypes),
		LastSeq:       r.seq,
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
