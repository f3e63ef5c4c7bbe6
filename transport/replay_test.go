package transport_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/telltale-go/telltale/sampling"
	"github.com/telltale-go/telltale/transport"
	"github.com/telltale-go/telltale/vocab"
)

// unsampledEnv is a transport whose tracer provider samples nothing at the
// head, with telltale's sampler and ID generator, and a dropped span to
// parent the calls under.
type unsampledEnv struct {
	rec    *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	tr     *transport.Transport
	client *http.Client
	logs   *syncBuffer
	parent trace.SpanContext
	ctx    context.Context
}

func newUnsampledEnv(t *testing.T, opts ...transport.Option) *unsampledEnv {
	t.Helper()
	e := &unsampledEnv{rec: tracetest.NewSpanRecorder(), logs: &syncBuffer{}}
	e.tp = sampling.NewTracerProvider(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0)), sdktrace.WithSpanProcessor(e.rec))
	t.Cleanup(func() { _ = e.tp.Shutdown(context.Background()) })
	all := append([]transport.Option{
		transport.WithTracerProvider(e.tp),
		transport.WithLogger(slogTo(e.logs)),
		transport.WithPropagators(propagation.TraceContext{}),
	}, opts...)
	e.tr = transport.New(nil, all...)
	t.Cleanup(func() { _ = e.tr.Close() })
	e.client = e.tr.Client()
	var span trace.Span
	e.ctx, span = e.tp.Tracer("test").Start(context.Background(), "handler")
	if span.IsRecording() {
		t.Fatal("the head sampler recorded the parent")
	}
	e.parent = span.SpanContext()
	return e
}

// traceparentServer answers with status and reports the traceparent each
// request carried.
func traceparentServer(t *testing.T, status int, delay time.Duration) (*httptest.Server, <-chan trace.SpanContext) {
	t.Helper()
	seen := make(chan trace.SpanContext, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		seen <- trace.SpanContextFromContext(ctx)
		time.Sleep(delay)
		w.WriteHeader(status)
		_, _ = w.Write([]byte("body"))
	}))
	t.Cleanup(srv.Close)
	return srv, seen
}

// A healthy call of an unsampled request exports nothing.
func TestUnsampledHealthyCallExportsNothing(t *testing.T) {
	e := newUnsampledEnv(t, transport.WithSlowThreshold(time.Second, time.Second))
	srv, _ := traceparentServer(t, http.StatusOK, 0)
	drainClose(get(t, e.client, e.ctx, srv.URL))
	time.Sleep(20 * time.Millisecond)
	if n := len(e.rec.Ended()); n != 0 {
		t.Errorf("%d spans exported for a healthy unsampled call", n)
	}
}

// An anomalous call of an unsampled request — a 5xx, a slow upstream, a
// failed call, a leaked body — is exported: in the request's trace, with
// the span id the upstream saw in traceparent, under its parent, timed as
// it happened, with otelhttp's attributes and telltale's evidence.
func TestUnsampledAnomalousCallsAreExported(t *testing.T) {
	refused := func() string {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		_ = ln.Close()
		return "http://" + addr
	}
	cases := []struct {
		name      string
		call      func(t *testing.T, e *unsampledEnv) (seen trace.SpanContext)
		errorType string
		check     func(t *testing.T, s sdktrace.ReadOnlySpan)
	}{
		{"5xx", func(t *testing.T, e *unsampledEnv) trace.SpanContext {
			srv, seen := traceparentServer(t, http.StatusBadGateway, 0)
			drainClose(get(t, e.client, e.ctx, srv.URL+"/p?token=secret"))
			return <-seen
		}, "502", func(t *testing.T, s sdktrace.ReadOnlySpan) {
			if got := spanAttr(t, s, vocab.AttrBodyEnd).AsString(); got != vocab.BodyEndEOF {
				t.Errorf("%s = %q", vocab.AttrBodyEnd, got)
			}
		}},
		{"slow", func(t *testing.T, e *unsampledEnv) trace.SpanContext {
			srv, seen := traceparentServer(t, http.StatusOK, 30*time.Millisecond)
			drainClose(get(t, e.client, e.ctx, srv.URL))
			return <-seen
		}, "", func(t *testing.T, s sdktrace.ReadOnlySpan) {
			ev := event(t, s, vocab.EventUpstreamSlow)
			if k, _ := attrOf(ev.Attributes, vocab.AttrSlowKind); k.AsString() != vocab.SlowTTFB {
				t.Errorf("slow kind %q", k.AsString())
			}
		}},
		{"refused", func(t *testing.T, e *unsampledEnv) trace.SpanContext {
			req, _ := http.NewRequestWithContext(e.ctx, http.MethodGet, refused(), nil)
			if _, err := e.client.Do(req); err == nil {
				t.Fatal("no error")
			}
			return trace.SpanContext{}
		}, vocab.ErrorConnectionRefused, nil},
		{"leak", func(t *testing.T, e *unsampledEnv) trace.SpanContext {
			srv, seen := traceparentServer(t, http.StatusOK, 0)
			ctx, scope := transport.WithScope(e.ctx)
			_ = get(t, e.client, ctx, srv.URL)
			scope.End()
			return <-seen
		}, vocab.ErrorBodyLeaked, func(t *testing.T, s sdktrace.ReadOnlySpan) {
			ev := event(t, s, vocab.EventBodyLeaked)
			if f, _ := attrOf(ev.Attributes, "code.file.path"); !strings.HasSuffix(f.AsString(), "_test.go") {
				t.Errorf("leak call site %q", f.AsString())
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newUnsampledEnv(t, transport.WithSlowThreshold(20*time.Millisecond, 0))
			start := time.Now()
			seen := c.call(t, e)
			end := time.Now()
			spans := e.waitEnded(t, 1)
			if len(spans) != 1 {
				t.Fatalf("%d spans exported", len(spans))
			}
			s := spans[0]
			if s.SpanContext().TraceID() != e.parent.TraceID() || s.Parent().SpanID() != e.parent.SpanID() || !s.SpanContext().IsSampled() {
				t.Errorf("span %v under %v, want in trace %v under %v", s.SpanContext(), s.Parent(), e.parent.TraceID(), e.parent.SpanID())
			}
			if seen.IsValid() && s.SpanContext().SpanID() != seen.SpanID() {
				t.Errorf("span id %v, but the upstream saw %v in traceparent", s.SpanContext().SpanID(), seen.SpanID())
			}
			if s.StartTime().Before(start) || s.EndTime().After(end) || s.EndTime().Before(s.StartTime()) {
				t.Errorf("span from %v to %v, call from %v to %v", s.StartTime(), s.EndTime(), start, end)
			}
			if !strings.HasPrefix(s.Name(), "GET 127.0.0.1:") || s.SpanKind() != trace.SpanKindClient || s.InstrumentationScope().Name != "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp" {
				t.Errorf("span %q, kind %v, scope %q", s.Name(), s.SpanKind(), s.InstrumentationScope().Name)
			}
			if !spanAttr(t, s, vocab.AttrReplayed).AsBool() || spanAttr(t, s, "http.request.method").AsString() != "GET" {
				t.Errorf("attributes %v", s.Attributes())
			}
			if u := spanAttr(t, s, "url.full").AsString(); strings.Contains(u, "secret") {
				t.Errorf("url.full %q", u)
			}
			if c.errorType != "" && (errorType(s) != c.errorType || s.Status().Code != codes.Error) {
				t.Errorf("error.type %q, status %v; want %q, Error", errorType(s), s.Status(), c.errorType)
			}
			if c.check != nil {
				c.check(t, s)
			}
		})
	}
}

// A body leaked by an unsampled request and found by the garbage
// collector, after the request is long over, is exported in that
// request's trace, and the log line names that trace.
func TestUnsampledLeakFoundLaterIsInTheRequestsTrace(t *testing.T) {
	e := newUnsampledEnv(t)
	srv, seen := traceparentServer(t, http.StatusOK, 0)
	func() {
		resp := get(t, e.client, e.ctx, srv.URL)
		_ = resp.StatusCode // never closed
	}()
	sc := <-seen
	eventually(t, "the collector to find the leak", func() bool {
		runtime.GC()
		return len(e.rec.Ended()) == 1
	})
	s := e.rec.Ended()[0]
	if s.SpanContext().SpanID() != sc.SpanID() || s.SpanContext().TraceID() != e.parent.TraceID() {
		t.Errorf("exported %v, the upstream saw %v", s.SpanContext(), sc)
	}
	// The report ends the span, then logs.
	eventually(t, "the log line to name the trace", func() bool {
		return strings.Contains(e.logs.String(), "trace_id="+e.parent.TraceID().String())
	})
}

// Without telltale's sampler, an anomaly of an unsampled request is not
// exported — as before — and a warning says once how to keep them.
func TestUnsampledWithoutTelltalesSamplerWarnsOnce(t *testing.T) {
	logs := &syncBuffer{}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sdktrace.NeverSample()))
	defer tp.Shutdown(context.Background())
	tr := transport.New(nil, transport.WithTracerProvider(tp), transport.WithLogger(slogTo(logs)))
	defer tr.Close()
	srv, seen := traceparentServer(t, http.StatusInternalServerError, 0)
	for range 3 {
		drainClose(get(t, tr.Client(), context.Background(), srv.URL))
		<-seen
	}
	if n := len(rec.Ended()); n != 0 {
		t.Errorf("%d spans exported", n)
	}
	if n := strings.Count(logs.String(), "sampling.NewTracerProvider"); n != 1 {
		t.Errorf("warned %d times:\n%s", n, logs)
	}
}

// waitEnded waits until n spans have been exported, and returns them.
func (e *unsampledEnv) waitEnded(t *testing.T, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	eventually(t, "exported spans", func() bool { return len(e.rec.Ended()) >= n })
	return e.rec.Ended()
}

// A sampled call is exported once, as otelhttp records it, whatever went
// wrong: replaying is for unsampled requests only.
func TestSampledAnomaliesAreNotReplayed(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sampling.NewTracerProvider(sdktrace.AlwaysSample(), sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	tr := transport.New(nil, transport.WithTracerProvider(tp), transport.WithLogger(discardLogger()),
		transport.WithSlowThreshold(time.Nanosecond, time.Nanosecond))
	defer tr.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	_ = ln.Close()
	if _, err := tr.Client().Get(dead); err == nil {
		t.Fatal("no error")
	}
	srv, _ := traceparentServer(t, http.StatusBadGateway, 0)
	drainClose(get(t, tr.Client(), context.Background(), srv.URL))
	ctx, scope := transport.WithScope(context.Background())
	_ = get(t, tr.Client(), ctx, srv.URL)
	scope.End()
	eventually(t, "three spans", func() bool { return len(rec.Ended()) >= 3 })
	time.Sleep(20 * time.Millisecond)
	spans := rec.Ended()
	ids := map[trace.SpanID]int{}
	for _, s := range spans {
		ids[s.SpanContext().SpanID()]++
		if v, ok := attrOf(s.Attributes(), vocab.AttrReplayed); ok && v.AsBool() {
			t.Errorf("a sampled span was replayed: %v", s.Attributes())
		}
	}
	if len(spans) != 3 || len(ids) != 3 {
		t.Errorf("%d spans, %d distinct ids, for 3 calls (failed, 5xx, leaked)", len(spans), len(ids))
	}
}

// With tracing off (a no-op provider), a failed call replays nothing and
// warns about nothing.
func TestNoopProviderReplaysNothing(t *testing.T) {
	logs := &syncBuffer{}
	tr := transport.New(nil, transport.WithTracerProvider(tracenoop.NewTracerProvider()), transport.WithLogger(slogTo(logs)))
	defer tr.Close()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	defer tp.Shutdown(context.Background())
	ctx, _ := tp.Tracer("app").Start(context.Background(), "handler") // a valid, unsampled parent
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	_ = ln.Close()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, dead, nil)
	if _, err := tr.Client().Do(req); err == nil {
		t.Fatal("no error")
	}
	if logs.String() != "" {
		t.Errorf("logged:\n%s", logs)
	}
}
