package load

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// Cancelling ctx while requests are in flight stops sending, cancels them,
// and returns only the requests that were sent (go test -race checks that
// the truncation does not race with the requests' goroutines).
func TestRunCancelled(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	res := Run(ctx, client, Config{URL: srv.URL, RPS: 100, Requests: 1000})
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run took %s after its context ended", d)
	}
	if len(res) == 0 || len(res) >= 1000 {
		t.Fatalf("%d results, want the few sent before the cancel", len(res))
	}
	for i, r := range res {
		if r.Err == "" {
			t.Errorf("result %d: no error, want the cancellation", i)
		}
	}
}
