package transport

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of [NewHardenedTransport]. Each replaces a Go default that the
// incident described in the README paid for.
const (
	// DefaultDialTimeout bounds a TCP connect, DNS included. Go's default
	// transport allows 30 s; a dead upstream should fail fast.
	DefaultDialTimeout = 5 * time.Second

	// DefaultKeepAlive is the TCP keep-alive period, so that a peer that
	// vanished without a FIN is detected.
	DefaultKeepAlive = 30 * time.Second

	// DefaultTLSHandshakeTimeout bounds a TLS handshake.
	DefaultTLSHandshakeTimeout = 5 * time.Second

	// DefaultResponseHeaderTimeout bounds the wait for response headers
	// once the request is written: a black-holed upstream that accepts
	// connections and never answers is the failure Go's default (no limit)
	// turns into an outage.
	DefaultResponseHeaderTimeout = 10 * time.Second

	// DefaultIdleConnTimeout closes pooled connections idle this long.
	DefaultIdleConnTimeout = 90 * time.Second

	// DefaultMaxIdleConns caps idle connections across all hosts.
	DefaultMaxIdleConns = 512

	// DefaultMaxIdleConnsPerHost is the number of idle connections kept per
	// upstream. Go keeps 2, so a gateway calling one service with more than
	// two requests in flight closes and redials connections all the time.
	DefaultMaxIdleConnsPerHost = 100
)

// NewHardenedTransport returns the transport [New] uses when given a nil base:
// a clone of http.DefaultTransport (so it keeps Go's proxy, HTTP/2 and TLS
// settings) with the timeouts and pool sizes above, and a dialer that records
// how long DNS, connect and TLS took for each new connection, which telltale
// puts on the span of the request that used it. Change any field before
// passing it to [New].
func NewHardenedTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	d := &net.Dialer{Timeout: DefaultDialTimeout, KeepAlive: DefaultKeepAlive}
	t.DialContext = timedDialer{d}.DialContext
	t.TLSHandshakeTimeout = DefaultTLSHandshakeTimeout
	t.ResponseHeaderTimeout = DefaultResponseHeaderTimeout
	t.IdleConnTimeout = DefaultIdleConnTimeout
	t.MaxIdleConns = DefaultMaxIdleConns
	t.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	return t
}

type timedDialer struct{ d *net.Dialer }

// DialContext dials with a trace of its own (one allocation per new
// connection, none per request) and returns a connection that remembers the
// timings.
func (td timedDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	tc := &timedConn{dialStart: time.Now()}
	// Dual-stack dialing may run several connects at once: keep the first
	// start and the first successful end, under the lock.
	stamp := func(t *time.Time, ok bool) {
		tc.mu.Lock()
		if ok && t.IsZero() {
			*t = time.Now()
		}
		tc.mu.Unlock()
	}
	trace := &httptrace.ClientTrace{
		DNSStart:     func(httptrace.DNSStartInfo) { stamp(&tc.dnsStart, true) },
		DNSDone:      func(httptrace.DNSDoneInfo) { stamp(&tc.dnsDone, true) },
		ConnectStart: func(string, string) { stamp(&tc.connectStart, true) },
		ConnectDone:  func(_, _ string, err error) { stamp(&tc.connectDone, err == nil) },
	}
	c, err := td.d.DialContext(httptrace.WithClientTrace(ctx, trace), network, addr)
	if err != nil {
		return nil, err
	}
	tc.mu.Lock()
	tc.Conn = c
	tc.dialDone = time.Now()
	tc.mu.Unlock()
	return tc, nil
}

// timedConn is a connection dialed by the hardened transport, with the
// timings of its set-up.
type timedConn struct {
	net.Conn
	mu                        sync.Mutex
	dialStart, dialDone       time.Time
	dnsStart, dnsDone         time.Time
	connectStart, connectDone time.Time
	firstUse                  atomic.Bool
}

// CloseWrite half-closes the connection when the dialed one can: the
// 101 Switching Protocols body net/http returns forwards CloseWrite to it.
func (c *timedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return fmt.Errorf("transport: CloseWrite: %w", http.ErrNotSupported)
}

// connTimings describes how a new connection was set up; zero values mean
// "not measured".
type connTimings struct {
	dns, connect, tls time.Duration
}

// timingsOf returns the set-up timings of c if the hardened dialer made it
// and this is its first use. The TLS time is the time from the end of the TCP
// connect to the connection being handed to the request, which for a TLS
// connection is the handshake.
func timingsOf(c net.Conn, now time.Time) (connTimings, bool) {
	var isTLS bool
	if tc, ok := c.(*tls.Conn); ok {
		c, isTLS = tc.NetConn(), true
	}
	tc, ok := c.(*timedConn)
	if !ok || !tc.firstUse.CompareAndSwap(false, true) {
		return connTimings{}, false
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	var t connTimings
	if !tc.dnsStart.IsZero() && !tc.dnsDone.IsZero() {
		t.dns = tc.dnsDone.Sub(tc.dnsStart)
	}
	if !tc.connectStart.IsZero() && !tc.connectDone.IsZero() {
		t.connect = tc.connectDone.Sub(tc.connectStart)
	} else {
		t.connect = tc.dialDone.Sub(tc.dialStart)
	}
	if isTLS {
		t.tls = now.Sub(tc.dialDone)
	}
	return t, true
}
