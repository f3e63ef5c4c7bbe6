package transport_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
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

// A Connect-Timeout-Ms already on the request never reaches the upstream
// longer than the time left: the caller's, or one a reverse proxy copied
// from the inbound request, is lowered to it — malformed, replaced —
// whether or not propagation is on; a shorter one is kept.
func TestForwardedTimeoutHeaderNeverExceedsTheTimeLeft(t *testing.T) {
	got := make(chan string, 1)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Connect-Timeout-Ms")
	}))
	defer upstream.Close()
	for _, propagate := range []bool{true, false} {
		var opts []transport.Option
		if propagate {
			opts = append(opts, transport.WithDeadlinePropagation())
		}
		e := newEnv(t, nil, opts...)
		for _, c := range []struct {
			header   string
			min, max int // what the upstream may see, in ms
		}{{"60000", 1, 200}, {"abc", 1, 200}, {"50", 50, 50}} {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, upstream.URL, nil)
			req.Header.Set("Connect-Timeout-Ms", c.header)
			resp, err := e.client.Do(req)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			drainClose(resp)
			seen := <-got
			if ms, err := strconv.Atoi(seen); err != nil || ms < c.min || ms > c.max {
				t.Errorf("propagation %v, caller's %q: upstream saw %q, want %d..%d", propagate, c.header, seen, c.min, c.max)
			}
			if req.Header.Get("Connect-Timeout-Ms") != c.header {
				t.Error("the caller's request was changed")
			}
		}
	}

	// A gateway: an inbound request asking for a minute, clamped to 200 ms
	// for the gateway, forwarded by httputil.ReverseProxy, which copies the
	// inbound headers.
	e := newEnv(t, nil, transport.WithDeadlinePropagation())
	proxy := httputil.NewSingleHostReverseProxy(mustParse(t, upstream.URL))
	proxy.Transport = e.tr
	gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 200*time.Millisecond) // the gateway's clamp
		defer cancel()
		proxy.ServeHTTP(w, r.WithContext(ctx))
	}))
	defer gateway.Close()
	req, _ := http.NewRequest(http.MethodGet, gateway.URL, nil)
	req.Header.Set("Connect-Timeout-Ms", "60000")
	resp, err := gateway.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	drainClose(resp)
	if ms, err := strconv.Atoi(<-got); err != nil || ms > 200 {
		t.Errorf("behind ReverseProxy, the upstream was told %d ms (%v), want at most the gateway's 200", ms, err)
	}
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
