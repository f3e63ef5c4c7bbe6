package transport_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
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

// openMany opens n bodies through a memory upstream, in order, and keeps
// them open; it returns the transport and the URLs in the order opened.
func openMany(tb testing.TB, n int) (*transport.Transport, []string) {
	tb.Helper()
	tr := transport.New(memoryUpstream{make([]byte, 16)}, transport.WithLogger(discardLogger()))
	tb.Cleanup(func() { _ = tr.Close() })
	client := tr.Client()
	var bodies []io.Closer
	urls := make([]string, n)
	for i := range n {
		urls[i] = "http://memory.test/items/" + strconv.Itoa(i)
		resp, err := client.Get(urls[i])
		if err != nil {
			tb.Fatal(err)
		}
		bodies = append(bodies, resp.Body)
	}
	tb.Cleanup(func() {
		for _, b := range bodies {
			_ = b.Close()
		}
	})
	return tr, urls
}

// OpenBodies(n) lists the n bodies opened first, oldest first, among many
// open ones.
func TestOpenBodiesListsTheOldest(t *testing.T) {
	tr, urls := openMany(t, 5000)
	got := tr.OpenBodies(10)
	if len(got) != 10 {
		t.Fatalf("%d bodies listed, want 10", len(got))
	}
	for i, b := range got {
		if b.URL != urls[i] {
			t.Errorf("body %d: %s, want %s", i, b.URL, urls[i])
		}
	}
	if all := tr.OpenBodies(0); len(all) != 5000 || all[0].URL != urls[0] || all[4999].URL != urls[4999] {
		t.Errorf("OpenBodies(0): %d bodies", len(all))
	}
}

// The cost of OpenBodies(10) does not grow with the bodies open: compare
// the rows (it was 22 to 37 ms at 100 000 open bodies when it walked all
// of them).
//
//	go test -run '^$' -bench OpenBodies -benchmem ./transport
func BenchmarkOpenBodies(b *testing.B) {
	for _, open := range []int{1000, 100_000} {
		b.Run("open="+strconv.Itoa(open), func(b *testing.B) {
			tr, _ := openMany(b, open)
			b.ResetTimer()
			for b.Loop() {
				if len(tr.OpenBodies(10)) != 10 {
					b.Fatal("not 10")
				}
			}
		})
	}
}
