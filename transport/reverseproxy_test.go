package transport_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/telltale-go/telltale/transport"
)

// The most common Go gateway is an httputil.ReverseProxy: behind one,
// telltale must be invisible. Each case runs through a proxy whose
// Transport is the plain transport and through one whose Transport is
// telltale, and the client must see the same thing.

// proxied starts a ReverseProxy to upstream over rt, served over TLS with
// HTTP/2 when h2 is set, and returns a client for it.
func proxied(t *testing.T, upstream *httptest.Server, rt http.RoundTripper, h2 bool) (*httptest.Server, *http.Client) {
	t.Helper()
	target, _ := url.Parse(upstream.URL)
	p := httputil.NewSingleHostReverseProxy(target)
	p.Transport = rt
	p.FlushInterval = -1
	p.ErrorLog = nil
	srv := tlsServer(t, h2, p)
	return srv, srv.Client()
}

// transports returns the plain transport and telltale over the same
// settings, by name.
func transports(t *testing.T, upstream *httptest.Server) map[string]http.RoundTripper {
	base := transport.NewHardenedTransport()
	if upstream.TLS != nil {
		base = hardenedFor(upstream)
	}
	e := newEnv(t, hardenedForOrPlain(upstream))
	t.Cleanup(func() { transport.VerifyNoOpenBodies(t, e.tr) })
	return map[string]http.RoundTripper{"plain": base, "telltale": e.tr}
}

func hardenedForOrPlain(upstream *httptest.Server) *http.Transport {
	if upstream.TLS != nil {
		return hardenedFor(upstream)
	}
	return transport.NewHardenedTransport()
}

// Server-sent events stream through: the client reads the first event
// while the upstream still holds the second.
func TestReverseProxyStreams(t *testing.T) {
	seen := make(chan struct{})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-seen:
		case <-time.After(5 * time.Second):
			return
		}
		_, _ = io.WriteString(w, "data: two\n\n")
	}))
	defer upstream.Close()
	for name, rt := range transports(t, upstream) {
		t.Run(name, func(t *testing.T) {
			srv, client := proxied(t, upstream, rt, true)
			resp := get(t, client, context.Background(), srv.URL+"/events")
			defer resp.Body.Close()
			r := bufio.NewReader(resp.Body)
			first, err := r.ReadString('\n')
			if err != nil || first != "data: one\n" {
				t.Fatalf("first event %q, %v", first, err)
			}
			seen <- struct{}{}
			rest, _ := io.ReadAll(r)
			if string(rest) != "\ndata: two\n\n" {
				t.Errorf("rest of the stream %q", rest)
			}
		})
	}
}

// A 101 upgrade (a WebSocket) is tunnelled both ways.
func TestReverseProxyUpgrades(t *testing.T) {
	upstream := upgradeServer(t, echoLine)
	for name, rt := range transports(t, upstream) {
		t.Run(name, func(t *testing.T) {
			srv, client := proxied(t, upstream, rt, false)
			resp := upgrade(t, client, srv.URL)
			defer resp.Body.Close()
			rw := resp.Body.(io.ReadWriter)
			if _, err := io.WriteString(rw, "ping\n"); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(rw).ReadString('\n')
			if err != nil || line != "echo: ping\n" {
				t.Errorf("through the tunnel: %q, %v", line, err)
			}
		})
	}
}

// Trailers the upstream does not announce — gRPC's grpc-status among them —
// reach the client, from an HTTP/1.1 upstream and from an HTTP/2 one.
func TestReverseProxyTrailers(t *testing.T) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/grpc")
		_, _ = io.WriteString(w, "message")
		w.(http.Flusher).Flush() // HTTP/1.1 sends trailers only on a chunked body
		w.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
		w.Header().Set(http.TrailerPrefix+"Grpc-Message", "ok")
	})
	for _, up := range []struct {
		name string
		h2   bool
	}{{"http1.1 upstream", false}, {"h2 upstream", true}} {
		t.Run(up.name, func(t *testing.T) {
			upstream := tlsServer(t, up.h2, handler)
			for name, rt := range transports(t, upstream) {
				t.Run(name, func(t *testing.T) {
					srv, client := proxied(t, upstream, rt, true)
					resp := get(t, client, context.Background(), srv.URL+"/svc.Service/Call")
					b, err := io.ReadAll(resp.Body)
					_ = resp.Body.Close()
					if err != nil || string(b) != "message" {
						t.Fatalf("body %q, %v", b, err)
					}
					if got := resp.Trailer.Get("Grpc-Status") + "/" + resp.Trailer.Get("Grpc-Message"); got != "0/ok" {
						t.Errorf("trailers %v: the call ends without grpc-status", resp.Trailer)
					}
				})
			}
		})
	}
}

// Bodies of every size arrive whole and identical.
func TestReverseProxyBodies(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, strings.Repeat("abcdefgh", 128<<10)) // 1 MiB
	}))
	defer upstream.Close()
	for name, rt := range transports(t, upstream) {
		t.Run(name, func(t *testing.T) {
			srv, client := proxied(t, upstream, rt, true)
			resp := get(t, client, context.Background(), srv.URL)
			b, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if err != nil || len(b) != 1<<20 || !strings.HasPrefix(string(b), "abcdefgh") {
				t.Errorf("read %d bytes, %v", len(b), err)
			}
		})
	}
}
