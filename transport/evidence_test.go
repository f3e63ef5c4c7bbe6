package transport_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/internal/testkit"
	"github.com/telltale-go/telltale/sampling"
	"github.com/telltale-go/telltale/transport"
	"github.com/telltale-go/telltale/vocab"
)

// twin is a transport whose head sampler samples every request or none,
// with telltale's sampler and ID generator, and the span of a handler to
// make calls under.
type twin struct {
	rec *tracetest.SpanRecorder
	tr  *transport.Transport
	ctx context.Context
}

func newTwin(t *testing.T, sampled bool, opts ...transport.Option) *twin {
	t.Helper()
	head := sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0))
	if sampled {
		head = sdktrace.AlwaysSample()
	}
	w := &twin{rec: tracetest.NewSpanRecorder()}
	tp := sampling.NewTracerProvider(head, sdktrace.WithSpanProcessor(w.rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	w.tr = transport.New(nil, append([]transport.Option{
		transport.WithTracerProvider(tp), transport.WithLogger(discardLogger()), transport.WithPropagators(propagation.TraceContext{}),
	}, opts...)...)
	t.Cleanup(func() { _ = w.tr.Close() })
	w.ctx, _ = tp.Tracer("test").Start(context.Background(), "handler") // never ended: only the call is exported
	return w
}

// clientSpan waits for the one client span exported.
func (w *twin) clientSpan(t *testing.T) sdktrace.ReadOnlySpan {
	t.Helper()
	var found sdktrace.ReadOnlySpan
	eventually(t, "the client span", func() bool {
		for _, s := range w.rec.Ended() {
			if s.SpanKind() == trace.SpanKindClient {
				found = s
				return true
			}
		}
		return false
	})
	return found
}

// An anomalous call exported because it was sampled and the same call
// replayed because the head sampler dropped it read the same in a trace:
// the same name, status, attributes and events, ids, times and the replay
// mark aside. Built once, the evidence is written to the live span or
// kept for the replay.
func TestSampledAndReplayedCallsAreTheSame(t *testing.T) {
	blackHole := func(t *testing.T) string {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}))
		t.Cleanup(func() { close(release); srv.Close() })
		return srv.URL
	}
	cases := []struct {
		name string
		opts []transport.Option
		url  func(t *testing.T) string
		call func(t *testing.T, w *twin, url string)
	}{
		{"5xx", nil, func(t *testing.T) string {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "upstream exploded", http.StatusBadGateway)
			}))
			t.Cleanup(srv.Close)
			return srv.URL + "/items?token=secret"
		}, func(t *testing.T, w *twin, url string) { drainClose(get(t, w.tr.Client(), w.ctx, url)) }},
		{"connection refused", nil, func(t *testing.T) string {
			ln, _ := net.Listen("tcp", "127.0.0.1:0")
			_ = ln.Close()
			return "http://" + ln.Addr().String() + "/items"
		}, func(t *testing.T, w *twin, url string) {
			req, _ := http.NewRequestWithContext(w.ctx, http.MethodGet, url, nil)
			if _, err := w.tr.Client().Do(req); err == nil {
				t.Fatal("no error")
			}
		}},
		{"black hole past its deadline, slow", []transport.Option{transport.WithSlowThreshold(20*time.Millisecond, 50*time.Millisecond)}, blackHole,
			func(t *testing.T, w *twin, url string) {
				ctx, cancel := context.WithTimeout(w.ctx, 100*time.Millisecond)
				defer cancel()
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				if _, err := w.tr.Client().Do(req); !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("error %v", err)
				}
			}},
		{"leaked", nil, func(t *testing.T) string {
			srv := httptest.NewServer(payloadHandler(64 << 10))
			t.Cleanup(srv.Close)
			return srv.URL
		}, func(t *testing.T, w *twin, url string) {
			ctx, scope := transport.WithScope(w.ctx)
			resp := get(t, w.tr.Client(), ctx, url)
			scope.End()
			_ = resp
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			url := c.url(t)
			sampled, replayed := newTwin(t, true, c.opts...), newTwin(t, false, c.opts...)
			c.call(t, sampled, url)
			c.call(t, replayed, url)
			a, b := sampled.clientSpan(t), replayed.clientSpan(t)
			if v, _ := attrOf(b.Attributes(), vocab.AttrReplayed); !v.AsBool() {
				t.Fatalf("the unsampled call was not replayed: %v", b.Attributes())
			}
			if diffs := testkit.SpanDiff(a, b); len(diffs) > 0 {
				t.Errorf("sampled and replayed spans differ:\n%s", strings.Join(diffs, "\n"))
			}
			if v, _ := attrOf(a.Attributes(), vocab.AttrAnomaly); !v.AsBool() {
				t.Errorf("the anomalous call's span is not marked %s", vocab.AttrAnomaly)
			}
		})
	}
}
