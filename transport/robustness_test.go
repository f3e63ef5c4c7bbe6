package transport_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/telltale-go/telltale/transport"
)

func TestCloseReportsOpenBodiesAndLosesNoSpan(t *testing.T) {
	srv := payloadServer(t, 64<<10)
	exp := &keepingExporter{}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp)) // a real, batching pipeline
	tr := transport.New(nil, transport.WithTracerProvider(tp), transport.WithLogger(discardLogger()))
	c := &http.Client{Transport: tr}

	resp := get(t, c, context.Background(), srv.URL) // still open at shutdown
	drainClose(get(t, c, context.Background(), srv.URL))

	// The documented shutdown order: transport, then tracer provider.
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := exp.spans
	if len(spans) != 2 {
		t.Fatalf("exported %d spans, want 2", len(spans))
	}
	var leaked int
	for _, s := range spans {
		for _, ev := range s.Events() {
			if ev.Name == transport.EventBodyLeaked {
				leaked++
				if r, _ := attrOf(ev.Attributes, transport.AttrLeakReason); r.AsString() != string(transport.LeakOpenAtClose) {
					t.Errorf("reason %q, want open_at_close", r.AsString())
				}
			}
		}
	}
	if leaked != 1 {
		t.Errorf("%d leak events, want 1", leaked)
	}
	_ = resp.Body.Close()
	if err := tr.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
}

func TestLeakWarningNamesTheTransport(t *testing.T) {
	srv := payloadServer(t, 10)
	logs := &syncBuffer{}
	e := newEnv(t, nil, transport.WithLogger(slogTo(logs)), transport.WithName(" payments "))
	if e.tr.Name() != "payments" {
		t.Errorf("Name() = %q, want payments", e.tr.Name())
	}
	ctx, scope := transport.WithScope(context.Background())
	_ = get(t, e.client, ctx, srv.URL)
	scope.End()
	if !strings.Contains(logs.String(), "transport=payments") {
		t.Errorf("leak warning does not name the transport:\n%s", logs)
	}
}

func TestLeakWarningsAreRateLimited(t *testing.T) {
	srv := payloadServer(t, 10)
	logs := &syncBuffer{}
	e := newEnv(t, nil, transport.WithLogger(slogTo(logs)), transport.WithLeakLogLimit(3))
	const n = 10
	ctx, scope := transport.WithScope(context.Background())
	for range n {
		_ = get(t, e.client, ctx, srv.URL)
	}
	if leaks := scope.End(); len(leaks) != n {
		t.Fatalf("%d leaks, want %d", len(leaks), n)
	}
	if got := strings.Count(logs.String(), "response body leaked"); got != 3 {
		t.Errorf("logged %d warnings, want the limit, 3", got)
	}
	if got := e.sum(t, transport.MetricBodiesLeaked, attribute.KeyValue{}); got != n {
		t.Errorf("leak metric = %d, want every leak, %d", got, n)
	}
}

func TestTrackingIsCapped(t *testing.T) {
	srv := payloadServer(t, 10)
	e := newEnv(t, nil, transport.WithMaxTrackedBodies(5))
	var bodies []io.Closer
	for range 8 {
		bodies = append(bodies, get(t, e.client, context.Background(), srv.URL).Body)
	}
	st := e.tr.Stats()
	if st.Open != 5 || st.Untracked != 3 {
		t.Errorf("stats = %+v, want 5 open, 3 untracked", st)
	}
	if got := e.sum(t, transport.MetricBodiesUntracked, attribute.KeyValue{}); got != 3 {
		t.Errorf("untracked metric = %d, want 3", got)
	}
	for _, b := range bodies {
		_ = b.Close()
	}
	// Untracked bodies still end their spans.
	e.waitEnded(t, 8)
	if st := e.tr.Stats(); st.Open != 0 {
		t.Errorf("open after close = %d", st.Open)
	}
}

// TestTrackerUnderParallelLoad opens, reads, closes and leaks bodies from
// many goroutines at once; every body must be counted exactly once.
func TestTrackerUnderParallelLoad(t *testing.T) {
	srv := payloadServer(t, 4<<10)
	e := newEnv(t, nil)
	const workers, perWorker = 16, 25
	var wg sync.WaitGroup
	leakedBy := make([]int, workers)
	for w := range workers {
		wg.Go(func() {
			ctx, scope := transport.WithScope(context.Background())
			for i := range perWorker {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
				resp, err := e.client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				switch i % 3 {
				case 0:
					drainClose(resp)
				case 1:
					_ = resp.Body.Close()
				case 2: // left open: the scope end reports it
				}
			}
			leakedBy[w] = len(scope.End())
		})
	}
	wg.Wait()
	// Each body left open is reported once: by its scope's end, or before
	// that by the garbage collector.
	wantLeaks := workers * (perWorker / 3)
	total := 0
	for _, n := range leakedBy {
		total += n
	}
	if total == 0 || total > wantLeaks {
		t.Errorf("scopes reported %d leaks, want 1..%d", total, wantLeaks)
	}
	if st := e.tr.Stats(); st.Open != 0 || st.Leaked != int64(wantLeaks) {
		t.Errorf("stats = %+v, want 0 open and %d leaked", st, wantLeaks)
	}
	if got := e.sum(t, transport.MetricBodiesOpen, attribute.KeyValue{}); got != 0 {
		t.Errorf("open metric = %d", got)
	}
	if n := len(e.waitEnded(t, workers*perWorker)); n != workers*perWorker {
		t.Errorf("%d spans ended, want %d: one per body", n, workers*perWorker)
	}
}

// keepingExporter keeps what it exported after shutdown, unlike
// tracetest.InMemoryExporter.
type keepingExporter struct {
	mu    sync.Mutex
	spans []sdktrace.ReadOnlySpan
}

func (k *keepingExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.spans = append(k.spans, spans...)
	return nil
}

func (k *keepingExporter) Shutdown(context.Context) error { return nil }
