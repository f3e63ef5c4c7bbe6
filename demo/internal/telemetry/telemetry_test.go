package telemetry_test

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/demo/internal/gateway"
	"github.com/telltale-go/telltale/demo/internal/telemetry"
	"github.com/telltale-go/telltale/demo/internal/upstream"
	"github.com/telltale-go/telltale/vocab"
)

// collector accepts OTLP/HTTP exports and discards them.
func collector(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// guardedWith serves the guarded gateway traced by a provider built from
// cfg, with its upstream users dead, and returns its URL and the recorder.
func guardedWith(t *testing.T, cfg telemetry.Config) (string, *telemetry.Recorder, []*upstream.Server) {
	t.Helper()
	cfg.Service, cfg.Endpoint, cfg.Logger = "gateway-test", collector(t), slog.New(slog.DiscardHandler)
	tp, rec, err := telemetry.NewProvider(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ups, err := gateway.StartUpstreams(upstream.Config{})
	if err != nil {
		t.Fatal(err)
	}
	h, closeFn := gateway.NewGuarded(gateway.Config{Upstreams: gateway.Describe(ups), TracerProvider: tp}, slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		_ = closeFn()
		_ = tp.Shutdown(context.Background())
		for _, u := range ups {
			_ = u.Close()
		}
	})
	return srv.URL, rec, ups
}

func get(t *testing.T, url string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
}

func TestAnomaliesOfUnsampledRequestsAreExportedWithinTheBudget(t *testing.T) {
	defer http.DefaultClient.CloseIdleConnections()
	counter := telemetry.NewAnomalyCounter()
	defer func() { _ = counter.Shutdown(context.Background()) }()
	url, rec, ups := guardedWith(t, telemetry.Config{SampleRatio: 0, AnomalyBudget: 1, Anomalies: counter})

	get(t, url+gateway.FeedPath) // healthy and unsampled: nothing recorded
	if snap := rec.Snapshot(0, 0); snap.ClientStarted != 0 {
		t.Fatalf("a healthy unsampled request recorded %d client spans, want none", snap.ClientStarted)
	}
	if err := ups[1].SetFault(upstream.Dead); err != nil {
		t.Fatal(err)
	}
	// The first anomaly spends the budget of one a second, the second is
	// refused.
	get(t, url+gateway.FeedPath)
	get(t, url+gateway.FeedPath)

	if got := rec.Snapshot(0, 0).ErrorTypes[vocab.ErrorConnectionRefused]; got != 1 {
		t.Errorf("%d replayed client spans with error.type=%s, want 1", got, vocab.ErrorConnectionRefused)
	}
	n, err := counter.Counts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n.Exported != 1 || n.OverBudget != 1 {
		t.Errorf("anomaly traces %+v, want 1 exported and 1 over budget", n)
	}
}

func TestPlainProviderExportsNothingOfUnsampledRequests(t *testing.T) {
	defer http.DefaultClient.CloseIdleConnections()
	url, rec, ups := guardedWith(t, telemetry.Config{SampleRatio: 0})
	if err := ups[1].SetFault(upstream.Dead); err != nil {
		t.Fatal(err)
	}
	get(t, url+gateway.FeedPath)
	if snap := rec.Snapshot(0, 0); snap.ClientStarted != 0 || len(snap.ErrorTypes) != 0 {
		t.Errorf("the plain provider recorded %+v for an unsampled request", snap)
	}
}

// The recorder reads an overrun as telltale records it, whole milliseconds
// in an int64, and counts the server spans by status and finding.
func TestRecorderCountsServerSpans(t *testing.T) {
	rec := telemetry.NewRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	tr := tp.Tracer("test")
	end := func(attrs ...attribute.KeyValue) {
		_, s := tr.Start(context.Background(), "GET /items", trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
		s.End()
	}
	end(attribute.Int("http.response.status_code", 200))
	end(attribute.Int("http.response.status_code", 504), attribute.Bool(vocab.AttrAnomaly, true), attribute.Bool(vocab.AttrDeadlineExceeded, true),
		attribute.Int64(vocab.AttrDeadlineOverrun, 150), attribute.Bool(vocab.AttrReplayed, true))
	snap := rec.Snapshot(0, 0)
	if snap.Overruns != 1 || snap.OverrunMax != 150*time.Millisecond {
		t.Errorf("overruns %d, largest %s; want 1 of 150ms", snap.Overruns, snap.OverrunMax)
	}
	c := snap.Servers
	if c.Ended != 2 || c.Replayed != 1 || c.Anomalous != 1 || c.Status["200"] != 1 || c.Status["504"] != 1 ||
		c.Marks[vocab.AttrDeadlineExceeded] != 1 || c.Marks[vocab.AttrDeadlineOverrun] != 1 {
		t.Errorf("server counts %+v", c)
	}
}

// DrainTraces counts each trace's spans, and whether one was anomalous,
// once.
func TestRecorderDrainsTraces(t *testing.T) {
	rec := telemetry.NewRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	tr := tp.Tracer("test")
	ctx, healthy := tr.Start(context.Background(), "GET /api/feed", trace.WithSpanKind(trace.SpanKindServer))
	_, call := tr.Start(ctx, "GET ads", trace.WithSpanKind(trace.SpanKindClient))
	call.End()
	healthy.End()
	ctx, root := tr.Start(context.Background(), "GET /api/feed", trace.WithSpanKind(trace.SpanKindServer))
	_, failed := tr.Start(ctx, "GET ads", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attribute.Bool(vocab.AttrAnomaly, true)))
	failed.End()
	root.End()

	got := rec.DrainTraces()
	want := map[string]telemetry.TraceSpans{
		healthy.SpanContext().TraceID().String(): {Spans: 2},
		root.SpanContext().TraceID().String():    {Spans: 2, Anomalous: true},
	}
	if !maps.Equal(got, want) {
		t.Errorf("traces %v, want %v", got, want)
	}
	if again := rec.DrainTraces(); len(again) != 0 {
		t.Errorf("drained twice: %v", again)
	}
}
