package transport_test

import (
	"context"
	"io"
	"net/http"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"

	"github.com/telltale-go/telltale/transport"
	"github.com/telltale-go/telltale/vocab"
)

// Tracking is capped: bodies past the cap are counted as untracked, and
// still end their spans.
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
	if got := e.sum(t, vocab.MetricBodiesUntracked, attribute.KeyValue{}); got != 3 {
		t.Errorf("untracked metric = %d, want 3", got)
	}
	for _, b := range bodies {
		_ = b.Close()
	}
	e.waitEnded(t, 8)
	if st := e.tr.Stats(); st.Open != 0 {
		t.Errorf("open after close = %d", st.Open)
	}
}

// Bodies opened, read, closed and leaked from many goroutines at once are
// each counted exactly once.
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
	if got := e.sum(t, vocab.MetricBodiesOpen, attribute.KeyValue{}); got != 0 {
		t.Errorf("open metric = %d", got)
	}
	if n := len(e.waitEnded(t, workers*perWorker)); n != workers*perWorker {
		t.Errorf("%d spans ended, want %d: one per body", n, workers*perWorker)
	}
}
