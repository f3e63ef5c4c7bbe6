package upstream_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/telltale-go/telltale/demo/internal/upstream"
	"github.com/telltale-go/telltale/sampling"
	"github.com/telltale-go/telltale/vocab"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func get(ctx context.Context, c *http.Client, url string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+upstream.ItemsPath, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func TestFaults(t *testing.T) {
	s, err := upstream.Start("articles", upstream.Config{SlowDelay: 100 * time.Millisecond, TrickleInterval: 10 * time.Millisecond, HugeBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := &http.Client{Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	ctx := context.Background()

	_, body, err := get(ctx, c, s.URL())
	if err != nil {
		t.Fatal(err)
	}
	var doc upstream.Document
	if err := json.Unmarshal(body, &doc); err != nil || doc.Service != "articles" || len(doc.Items) == 0 {
		t.Fatalf("healthy: %v %+v", err, doc)
	}

	if err := s.SetFault(upstream.Slow); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, _, err := get(ctx, c, s.URL()); err != nil || time.Since(start) < 100*time.Millisecond {
		t.Errorf("slow: err %v after %s", err, time.Since(start))
	}

	if err := s.SetFault(upstream.Trickle); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if _, b, err := get(ctx, c, s.URL()); err != nil || string(b) != string(body) || time.Since(start) < 50*time.Millisecond {
		t.Errorf("trickle: err %v, same body %v, after %s", err, string(b) == string(body), time.Since(start))
	}

	if err := s.SetFault(upstream.Huge); err != nil {
		t.Fatal(err)
	}
	if _, b, err := get(ctx, c, s.URL()); err != nil || len(b) < 1<<19 {
		t.Errorf("huge: err %v, %d bytes", err, len(b))
	}

	if err := s.SetFault(upstream.BlackHole); err != nil {
		t.Fatal(err)
	}
	bctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, _, err = get(bctx, c, s.URL())
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("black hole: err %v, want a deadline", err)
	}

	if err := s.SetFault(upstream.Dead); err != nil {
		t.Fatal(err)
	}
	if _, _, err := get(ctx, c, s.URL()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dead: err %v, want connection refused", err)
	}

	if err := s.SetFault(upstream.Healthy); err != nil {
		t.Fatal(err)
	}
	if _, _, err := get(ctx, c, s.URL()); err != nil {
		t.Errorf("back from dead: %v", err)
	}
	if err := s.SetFault("flaky"); !errors.Is(err, upstream.ErrUnknownFault) {
		t.Errorf("unknown fault: %v", err)
	}
}

func TestBlackHoleReleasedWhenFaultChanges(t *testing.T) {
	s, err := upstream.Start("ads", upstream.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.SetFault(upstream.BlackHole); err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	errc := make(chan error, 1)
	go func() {
		_, _, err := get(context.Background(), c, s.URL())
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if err := s.SetFault(upstream.Healthy); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("released request: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("black-holed request not released")
	}
}

func TestErrorFaultAnswers503WithAJSONError(t *testing.T) {
	s, err := upstream.Start("ads", upstream.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.SetFault(upstream.Error); err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	resp, body, err := get(context.Background(), c, s.URL())
	if err != nil {
		t.Fatal(err)
	}
	var msg struct {
		Message string `json:"message"`
	}
	if resp.StatusCode != http.StatusServiceUnavailable || json.Unmarshal(body, &msg) != nil || msg.Message != "ads is unavailable" {
		t.Errorf("error fault: %s %s, want 503 with a JSON message", resp.Status, body)
	}
}

// traced starts an upstream whose spans go to a recorder, behind a
// provider built by mk.
func traced(t *testing.T, name string, cfg upstream.Config, mk func(...sdktrace.TracerProviderOption) *sdktrace.TracerProvider) (*upstream.Server, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := mk(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	cfg.TracerProvider = func(service string) (trace.TracerProvider, error) {
		if service != name {
			t.Errorf("tracer provider asked for %q, want %q", service, name)
		}
		return tp, nil
	}
	cfg.Logger = slog.New(slog.DiscardHandler)
	s, err := upstream.Start(name, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, rec
}

func sampledProvider(opts ...sdktrace.TracerProviderOption) *sdktrace.TracerProvider {
	return sdktrace.NewTracerProvider(opts...)
}

// unsampledProvider is telltale's provider around a head sampler that keeps
// nothing, as a production service's keeps 99 % of nothing.
func unsampledProvider(opts ...sdktrace.TracerProviderOption) *sdktrace.TracerProvider {
	return sampling.NewTracerProvider(sdktrace.ParentBased(sdktrace.NeverSample()), opts...)
}

// caller is the span context of a gateway's client span, as its
// traceparent carries it.
func caller(sampled bool) trace.SpanContext {
	cfg := trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:  trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		Remote:  true,
	}
	if sampled {
		cfg.TraceFlags = trace.FlagsSampled
	}
	return trace.NewSpanContext(cfg)
}

// callFrom gets the upstream's document as a caller with span context sc
// does, sending header (e.g. Connect-Timeout-Ms) too.
func callFrom(t *testing.T, s *upstream.Server, sc trace.SpanContext, header http.Header) (*http.Response, []byte, time.Duration) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.URL()+upstream.ItemsPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), propagation.HeaderCarrier(req.Header))
	c := &http.Client{Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body, time.Since(start)
}

// serverSpan waits for the one span the upstream ended.
func serverSpan(t *testing.T, rec *tracetest.SpanRecorder) sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for len(rec.Ended()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	ended := rec.Ended()
	if len(ended) != 1 {
		t.Fatalf("%d spans ended, want the server span alone", len(ended))
	}
	return ended[0]
}

func attrOf(s sdktrace.ReadOnlySpan, key string) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// The upstream's span is its caller's child: same trace, parent the span
// id the traceparent named, named by route.
func TestSpanIsAChildOfTheCallersSpan(t *testing.T) {
	s, rec := traced(t, "users", upstream.Config{}, sampledProvider)
	from := caller(true)
	if resp, _, _ := callFrom(t, s, from, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	span := serverSpan(t, rec)
	if span.Name() != "GET "+upstream.ItemsPath || span.SpanKind() != trace.SpanKindServer ||
		span.SpanContext().TraceID() != from.TraceID() || span.Parent().SpanID() != from.SpanID() {
		t.Errorf("span %q (%v) in trace %s under %s, want GET %s, server, in trace %s under %s",
			span.Name(), span.SpanKind(), span.SpanContext().TraceID(), span.Parent().SpanID(), upstream.ItemsPath, from.TraceID(), from.SpanID())
	}
	if _, ok := attrOf(span, vocab.AttrAnomaly); ok {
		t.Errorf("a healthy request's span is marked %s", vocab.AttrAnomaly)
	}
}

// A slow answer is the upstream's own anomaly: exported although its
// caller's sampler dropped the request, in the caller's trace, under the
// caller's span.
func TestSlowRequestIsReplayedUnderTheCallersSpan(t *testing.T) {
	s, rec := traced(t, "ads", upstream.Config{SlowDelay: 120 * time.Millisecond, SlowRequest: 50 * time.Millisecond}, unsampledProvider)
	if err := s.SetFault(upstream.Slow); err != nil {
		t.Fatal(err)
	}
	from := caller(false)
	if resp, _, took := callFrom(t, s, from, nil); resp.StatusCode != http.StatusOK || took < 120*time.Millisecond {
		t.Fatalf("status %d after %s, want 200 after 120ms", resp.StatusCode, took)
	}
	span := serverSpan(t, rec)
	if span.SpanContext().TraceID() != from.TraceID() || span.Parent().SpanID() != from.SpanID() {
		t.Errorf("replayed span in trace %s under %s, want trace %s under %s", span.SpanContext().TraceID(), span.Parent().SpanID(), from.TraceID(), from.SpanID())
	}
	if v, _ := attrOf(span, vocab.AttrReplayed); !v.AsBool() {
		t.Errorf("span not marked %s", vocab.AttrReplayed)
	}
	if v, _ := attrOf(span, vocab.AttrAnomaly); !v.AsBool() {
		t.Errorf("span not marked %s", vocab.AttrAnomaly)
	}
	slow := false
	for _, ev := range span.Events() {
		slow = slow || ev.Name == vocab.EventRequestSlow
	}
	if !slow {
		t.Errorf("no %s event", vocab.EventRequestSlow)
	}
}

// A black hole lets go of a request when the deadline its caller
// propagated passes: a 504 at that deadline, its handler prompt, so no
// overrun.
func TestBlackHoleAnswers504AtTheCallersDeadline(t *testing.T) {
	s, rec := traced(t, "ads", upstream.Config{}, sampledProvider)
	if err := s.SetFault(upstream.BlackHole); err != nil {
		t.Fatal(err)
	}
	resp, body, took := callFrom(t, s, caller(true), http.Header{"Connect-Timeout-Ms": {"150"}})
	if resp.StatusCode != http.StatusGatewayTimeout || took < 150*time.Millisecond || took > time.Second {
		t.Errorf("%s after %s (%s), want 504 after 150ms", resp.Status, took, body)
	}
	span := serverSpan(t, rec)
	if v, _ := attrOf(span, vocab.AttrDeadlineExceeded); !v.AsBool() {
		t.Errorf("span lacks %s", vocab.AttrDeadlineExceeded)
	}
	if v, ok := attrOf(span, vocab.AttrDeadlineOverrun); ok {
		t.Errorf("span has %s=%s: the handler returned at its deadline", vocab.AttrDeadlineOverrun, v.Emit())
	}
	if v, _ := attrOf(span, vocab.AttrDeadlineSource); v.AsString() != "header" {
		t.Errorf("deadline source %q, want header", v.AsString())
	}
}

// Without a deadline from its caller, a black hole holds the request
// until the fault is switched off, as before the upstreams were traced.
func TestBlackHoleHoldsACallerWithoutADeadline(t *testing.T) {
	s, _ := traced(t, "ads", upstream.Config{}, sampledProvider)
	if err := s.SetFault(upstream.BlackHole); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(300*time.Millisecond, func() { _ = s.SetFault(upstream.Healthy) })
	if resp, _, took := callFrom(t, s, caller(true), nil); resp.StatusCode != http.StatusOK || took < 300*time.Millisecond {
		t.Errorf("status %d after %s, want 200 once the black hole is switched off (300ms)", resp.StatusCode, took)
	}
}

// A trickling body keeps trickling past the caller's deadline for as long
// as the caller reads: the network is slow, not the handler.
func TestTrickleOutlastsTheCallersDeadline(t *testing.T) {
	s, _ := traced(t, "ads", upstream.Config{TrickleChunk: 256, TrickleInterval: 20 * time.Millisecond}, sampledProvider)
	if err := s.SetFault(upstream.Trickle); err != nil {
		t.Fatal(err)
	}
	_, want, _ := callFrom(t, s, caller(true), nil)
	resp, body, took := callFrom(t, s, caller(true), http.Header{"Connect-Timeout-Ms": {"30"}})
	if resp.StatusCode != http.StatusOK || string(body) != string(want) || took < 100*time.Millisecond {
		t.Errorf("status %d, whole body %v, after %s: want the whole body, trickled past the 30ms deadline", resp.StatusCode, string(body) == string(want), took)
	}
}
