package transport_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptrace"
	"testing"
)

// The hardened transport's connections are Go's own: user code asserting
// GotConnInfo.Conn to *net.TCPConn (or a *tls.Conn over one) still can, and
// io.Copy keeps the TCP fast paths.
func TestHardenedConnectionsAreGosOwn(t *testing.T) {
	plain := payloadServer(t, 10)
	secure := tlsServer(t, true, payloadHandler(10))
	for name, c := range map[string]struct {
		url  string
		base *http.Transport
	}{"tcp": {plain.URL, nil}, "tls": {secure.URL, hardenedFor(secure)}} {
		t.Run(name, func(t *testing.T) {
			var base http.RoundTripper
			if c.base != nil {
				base = c.base
			}
			e := newEnv(t, base)
			var conn net.Conn
			ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
				GotConn: func(i httptrace.GotConnInfo) { conn = i.Conn },
			})
			drainClose(get(t, e.client, ctx, c.url))
			if tc, ok := conn.(*tls.Conn); ok {
				conn = tc.NetConn()
			}
			if _, ok := conn.(*net.TCPConn); !ok {
				t.Errorf("GotConnInfo.Conn is %T, want *net.TCPConn", conn)
			}
		})
	}
}
