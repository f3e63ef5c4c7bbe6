package transport_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"

	"github.com/telltale-go/telltale/transport"
)

// A fault is an upstream misbehaving in one way, and what telltale must make
// of it.
type fault struct {
	name string
	// start returns the URL to call and, for faults served by httptest,
	// the number of connections the server has open.
	start func(t *testing.T) (string, func() int64)
	// base adjusts the hardened transport, e.g. shorter timeouts.
	base func(*http.Transport)
	// wantErrorType is the error.type of the client span ("" = no error).
	wantErrorType string
	// wantStatus is the span status code.
	wantStatus codes.Code
}

const faultDeadline = 300 * time.Millisecond

// listenOnly returns the address of a listener that accepts connections and
// then does whatever serve does with them; it closes them when the test ends.
func listenOnly(t *testing.T, serve func(net.Conn)) string {
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

// countingServer serves h and counts its open connections.
func countingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, func() int64) {
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
	return srv, open.Load
}

var faults = []fault{
	{
		name: "refused",
		start: func(t *testing.T) (string, func() int64) {
			ln, _ := net.Listen("tcp", "127.0.0.1:0")
			addr := ln.Addr().String()
			_ = ln.Close()
			return "http://" + addr, nil
		},
		wantErrorType: string(transport.KindConnectionRefused), wantStatus: codes.Error,
	},
	{
		name: "black hole",
		start: func(t *testing.T) (string, func() int64) {
			return "http://" + listenOnly(t, func(net.Conn) {}), nil
		},
		wantErrorType: string(transport.KindDeadlineExceeded), wantStatus: codes.Error,
	},
	{
		name: "slow headers past the header timeout",
		start: func(t *testing.T) (string, func() int64) {
			return "http://" + listenOnly(t, func(net.Conn) {}), nil
		},
		base:          func(tr *http.Transport) { tr.ResponseHeaderTimeout = 50 * time.Millisecond },
		wantErrorType: string(transport.KindTimeoutAwaitingHeaders), wantStatus: codes.Error,
	},
	{
		name: "trickling body",
		start: func(t *testing.T) (string, func() int64) {
			srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "1000")
				for range 1000 {
					if _, err := w.Write([]byte("x")); err != nil {
						return
					}
					w.(http.Flusher).Flush()
					select {
					case <-r.Context().Done():
						return
					case <-time.After(20 * time.Millisecond):
					}
				}
			})
			return srv.URL, conns
		},
		wantErrorType: string(transport.KindDeadlineExceeded), wantStatus: codes.Error,
	},
	{
		name: "reset mid-body",
		start: func(t *testing.T) (string, func() int64) {
			srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "100000")
				_, _ = w.Write([]byte("partial"))
				w.(http.Flusher).Flush()
				conn, _, _ := http.NewResponseController(w).Hijack()
				_ = conn.(*net.TCPConn).SetLinger(0)
				_ = conn.Close()
			})
			return srv.URL, conns
		},
		wantErrorType: string(transport.KindConnectionReset), wantStatus: codes.Error,
	},
	{
		name: "body larger than the drain limit",
		start: func(t *testing.T) (string, func() int64) {
			big := make([]byte, 4*transport.DefaultDrainLimit)
			srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(big) })
			return srv.URL, conns
		},
		wantStatus: codes.Unset,
	},
	{
		name: "malformed response",
		start: func(t *testing.T) (string, func() int64) {
			return "http://" + listenOnly(t, func(c net.Conn) {
				_, _ = c.Read(make([]byte, 4096))
				_, _ = c.Write([]byte("SSH-2.0-OpenSSH_9.2\r\n\r\n"))
			}), nil
		},
		wantErrorType: string(transport.KindMalformedResponse), wantStatus: codes.Error,
	},
	{
		name: "stalled TLS handshake",
		start: func(t *testing.T) (string, func() int64) {
			return "https://" + listenOnly(t, func(net.Conn) {}), nil
		},
		base:          func(tr *http.Transport) { tr.TLSHandshakeTimeout = 50 * time.Millisecond },
		wantErrorType: string(transport.KindTLSHandshakeTimeout), wantStatus: codes.Error,
	},
	{
		name: "5xx",
		start: func(t *testing.T) (string, func() int64) {
			srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "upstream exploded", http.StatusBadGateway)
			})
			return srv.URL, conns
		},
		wantErrorType: "502", wantStatus: codes.Error,
	},
}

// TestFaultMatrix calls each faulty upstream the way a handler does — with a
// deadline, reading the whole body, closing it — and checks that the call
// ends within the deadline plus a margin, that the span says what happened,
// and that no body, connection or goroutine is left behind (goleak runs
// after the package's tests).
func TestFaultMatrix(t *testing.T) {
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			url, conns := f.start(t)
			base := transport.NewHardenedTransport()
			base.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
			if f.base != nil {
				f.base(base)
			}
			e := newEnv(t, base)
			ctx, cancel := context.WithTimeout(context.Background(), faultDeadline)
			defer cancel()

			start := time.Now()
			err := call(ctx, e.client, url)
			took := time.Since(start)
			if took > faultDeadline+250*time.Millisecond {
				t.Errorf("took %s with a %s deadline", took, faultDeadline)
			}
			if (f.wantErrorType != "") != (err != nil) {
				t.Errorf("err = %v", err)
			}
			s := e.waitEnded(t, 1)[0]
			if s.Status().Code != f.wantStatus {
				t.Errorf("span status = %v, want %v", s.Status(), f.wantStatus)
			}
			if f.wantErrorType != "" {
				if got := spanAttr(t, s, "error.type").AsString(); got != f.wantErrorType {
					t.Errorf("error.type = %q, want %q (err %v)", got, f.wantErrorType, err)
				}
			}
			transport.VerifyNoOpenBodies(t, e.tr)
			e.tr.CloseIdleConnections()
			if conns != nil {
				// The pool is bounded: the call's connection is gone once
				// idle connections are closed.
				waitFor(t, func() bool { return conns() == 0 })
			}
		})
	}
}

func TestRedirectLoopClosesEveryHop(t *testing.T) {
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, srv.URL+r.URL.Path+"x", http.StatusFound)
	}))
	defer srv.Close()
	e := newEnv(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), faultDeadline)
	defer cancel()
	err := call(ctx, e.client, srv.URL+"/")
	if err == nil {
		t.Fatal("a redirect loop succeeded")
	}
	spans := e.waitEnded(t, 10)
	if len(spans) != 10 {
		t.Errorf("%d spans for 10 hops", len(spans))
	}
	transport.VerifyNoOpenBodies(t, e.tr)
}

func call(ctx context.Context, c *http.Client, url string) error {
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
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(errors.New("condition not met within 3s"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
