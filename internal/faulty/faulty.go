package faulty

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/telltale-go/telltale/transport"
	"github.com/telltale-go/telltale/vocab"
)

// An Upstream is a started faulty upstream.
type Upstream struct {
	// URL is the base URL to call.
	URL string
	// Conns returns the connections the upstream has open, or is nil when
	// the fault is not served by an HTTP server.
	Conns func() int64
}

// A Fault is an upstream misbehaving in one way, and what telltale must make
// of it.
type Fault struct {
	Name string
	// Start starts the upstream; it stops when the test ends.
	Start func(t testing.TB) Upstream
	// Tune adjusts the hardened transport for the fault (shorter timeouts).
	Tune func(*http.Transport)
	// ErrorType is the error.type the client span must carry; "" for none.
	ErrorType string
}

// Base returns the hardened transport tuned for the fault, trusting any
// certificate (the TLS fault never gets as far as checking one).
func (f Fault) Base() *http.Transport {
	base := transport.NewHardenedTransport()
	base.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	if f.Tune != nil {
		f.Tune(base)
	}
	return base
}

// Failing reports whether a call to the upstream fails.
func (f Fault) Failing() bool { return f.ErrorType != "" }

// Deadline is the request deadline the matrix calls the faults with.
const Deadline = 300 * time.Millisecond

// Margin is how much later than its deadline a call may end.
const Margin = 250 * time.Millisecond

// Faults returns the fault matrix.
func Faults() []Fault {
	return []Fault{
		{
			Name: "refused",
			Start: func(t testing.TB) Upstream {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				addr := ln.Addr().String()
				_ = ln.Close() // nothing listens there now
				return Upstream{URL: "http://" + addr}
			},
			ErrorType: vocab.ErrorConnectionRefused,
		},
		{
			Name:      "black hole",
			Start:     func(t testing.TB) Upstream { return Upstream{URL: "http://" + Listen(t, func(net.Conn) {})} },
			ErrorType: vocab.ErrorDeadlineExceeded,
		},
		{
			Name:      "slow headers past the header timeout",
			Start:     func(t testing.TB) Upstream { return Upstream{URL: "http://" + Listen(t, func(net.Conn) {})} },
			Tune:      func(tr *http.Transport) { tr.ResponseHeaderTimeout = 50 * time.Millisecond },
			ErrorType: vocab.ErrorTimeoutAwaitingHeaders,
		},
		{
			Name: "trickling body",
			Start: func(t testing.TB) Upstream {
				return Counting(t, Trickle(20*time.Millisecond))
			},
			ErrorType: vocab.ErrorDeadlineExceeded,
		},
		{
			Name: "reset mid-body",
			Start: func(t testing.TB) Upstream {
				return Counting(t, func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Length", "100000")
					_, _ = w.Write([]byte("partial"))
					w.(http.Flusher).Flush()
					conn, _, err := http.NewResponseController(w).Hijack()
					if err != nil {
						return
					}
					_ = conn.(*net.TCPConn).SetLinger(0)
					_ = conn.Close()
				})
			},
			ErrorType: vocab.ErrorConnectionReset,
		},
		{
			Name: "body larger than the drain limit",
			Start: func(t testing.TB) Upstream {
				big := make([]byte, 4<<20) // four times the biggest drain limit a test sets, 16 times the default
				return Counting(t, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(big) })
			},
		},
		{
			Name: "malformed response",
			Start: func(t testing.TB) Upstream {
				return Upstream{URL: "http://" + Listen(t, func(c net.Conn) {
					_, _ = c.Read(make([]byte, 4096))
					_, _ = c.Write([]byte("SSH-2.0-OpenSSH_9.2\r\n\r\n"))
				})}
			},
			ErrorType: vocab.ErrorMalformedResponse,
		},
		{
			Name:      "stalled TLS handshake",
			Start:     func(t testing.TB) Upstream { return Upstream{URL: "https://" + Listen(t, func(net.Conn) {})} },
			Tune:      func(tr *http.Transport) { tr.TLSHandshakeTimeout = 50 * time.Millisecond },
			ErrorType: vocab.ErrorTLSHandshakeTimeout,
		},
		{
			Name: "5xx",
			Start: func(t testing.TB) Upstream {
				return Counting(t, func(w http.ResponseWriter, r *http.Request) {
					http.Error(w, "upstream exploded", http.StatusBadGateway)
				})
			},
			ErrorType: "502",
		},
	}
}

// Call calls url the way a handler does: with ctx, reading the body (up to
// 64 KiB, then closing it early), closing it. A 5xx answer is an error.
func Call(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10)); err != nil {
		return err
	}
	if resp.StatusCode >= 500 {
		return fmt.Errorf("upstream answered %d", resp.StatusCode)
	}
	return nil
}

// CallThrough is Call made from frames calls deep, as a library that wraps
// the client (a retrying client, a REST client) makes it.
func CallThrough(ctx context.Context, c *http.Client, url string, frames int) error {
	if frames > 0 {
		return CallThrough(ctx, c, url, frames-1)
	}
	return Call(ctx, c, url)
}

// Trickle serves a body of 1000 bytes, one byte every interval, until the
// client goes away.
func Trickle(every time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		for range 1000 {
			if _, err := w.Write([]byte("x")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(every):
			}
		}
	}
}

// Listen returns the address of a listener that accepts connections and
// hands each to serve; it closes them all when the test ends.
func Listen(t testing.TB, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { serve(c) })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// Counting serves h on an httptest server that counts its open connections.
func Counting(t testing.TB, h http.HandlerFunc) Upstream {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	var open atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return Upstream{URL: srv.URL, Conns: open.Load}
}

// WaitNoConns waits up to 3 s for the upstream to have no open connection:
// the client's pool let go of it.
func WaitNoConns(t testing.TB, up Upstream) {
	t.Helper()
	if up.Conns == nil {
		return
	}
	deadline := time.Now().Add(3 * time.Second)
	for up.Conns() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("upstream still has %d connections open", up.Conns())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
