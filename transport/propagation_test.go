package transport_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/telltale-go/telltale/transport"
)

// With deadline propagation, the upstream learns how long the caller will
// wait, in Connect-Timeout-Ms; the caller's own value is kept, the caller's
// request is not changed, and nothing is sent without a deadline.
func TestDeadlinePropagation(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Connect-Timeout-Ms")
	}))
	defer srv.Close()
	e := newEnv(t, nil, transport.WithDeadlinePropagation())
	send := func(ctx context.Context, header string) string {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		if header != "" {
			req.Header.Set("Connect-Timeout-Ms", header)
		}
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		drainClose(resp)
		if req.Header.Get("Connect-Timeout-Ms") != header {
			t.Error("the caller's request was changed")
		}
		return <-got
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if ms, err := strconv.Atoi(send(ctx, "")); err != nil || ms <= 1000 || ms > 1500 {
		t.Errorf("upstream saw %d ms (%v), want (1000, 1500]", ms, err)
	}
	if v := send(ctx, "250"); v != "250" {
		t.Errorf("the caller's own value became %q", v)
	}
	// Without a deadline, the backstop is the deadline.
	if ms, err := strconv.Atoi(send(context.Background(), "")); err != nil || ms > 30000 || ms < 29000 {
		t.Errorf("backstop sent as %d ms (%v), want about 30000", ms, err)
	}
	// Farther than ten digits of milliseconds: no deadline, for the protocol.
	far, cancelFar := context.WithTimeout(context.Background(), 200*24*time.Hour)
	defer cancelFar()
	if v := send(far, ""); v != "" {
		t.Errorf("a 200-day deadline was sent as %q", v)
	}
	none := newEnv(t, nil, transport.WithDeadlinePropagation(), transport.WithTimeout(0))
	drainClose(get(t, none.client, context.Background(), srv.URL))
	if h := <-got; h != "" {
		t.Errorf("header %q sent without any deadline", h)
	}
}
