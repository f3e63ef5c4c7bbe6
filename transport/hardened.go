package transport

import (
	"context"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/telltale-go/telltale/vocab"
)

// The settings of [NewHardenedTransport] that differ from Go's defaults.
// Each answers a failure of the incident in the README.
const (
	hardenedDialTimeout           = 5 * time.Second  // Go: 30 s. A dead upstream should fail fast.
	hardenedKeepAlive             = 30 * time.Second // as Go: a peer that vanished without a FIN is found
	hardenedTLSHandshakeTimeout   = 5 * time.Second  // Go: 10 s
	hardenedResponseHeaderTimeout = 10 * time.Second // Go: none. A black hole accepts and never answers.
	hardenedIdleConnTimeout       = 90 * time.Second // as Go
	hardenedMaxIdleConns          = 512              // Go: 100
	hardenedMaxIdleConnsPerHost   = 100              // Go: 2, which makes a busy gateway redial all the time
)

// NewHardenedTransport returns the transport [New] uses when given a nil
// base: Go's default transport (its proxy, HTTP/2 and TLS settings) with
// timeouts and pool sizes fit for a gateway — dial 5 s, TLS handshake 5 s,
// response headers 10 s, 100 idle connections per upstream (Go keeps 2) —
// and a dialer that measures the DNS and connect time of each new
// connection for the span of the request that dialed it. It returns a
// fresh *http.Transport: change any field before passing it to New.
//
// It starts from a clone of http.DefaultTransport when that is an
// *http.Transport; when something replaced it (a test double, a proxy
// wrapper, a telltale Transport), from Go's documented defaults instead.
func NewHardenedTransport() *http.Transport {
	t := goDefaultTransport()
	d := &net.Dialer{Timeout: hardenedDialTimeout, KeepAlive: hardenedKeepAlive}
	t.DialContext = timedDialer{d}.DialContext
	t.TLSHandshakeTimeout = hardenedTLSHandshakeTimeout
	t.ResponseHeaderTimeout = hardenedResponseHeaderTimeout
	t.IdleConnTimeout = hardenedIdleConnTimeout
	t.MaxIdleConns = hardenedMaxIdleConns
	t.MaxIdleConnsPerHost = hardenedMaxIdleConnsPerHost
	return t
}

// goDefaultTransport returns a clone of http.DefaultTransport, or, when it
// is not an *http.Transport, a transport with the same documented settings.
func goDefaultTransport() *http.Transport {
	if t, ok := http.DefaultTransport.(*http.Transport); ok {
		return t.Clone()
	}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: 1 * time.Second,
	}
}

// dialTimings describes a connection dialed for a request: when the dial
// started and ended (zero while it runs), and, once it ended, how long DNS
// and the TCP connect took.
type dialTimings struct {
	start, end   time.Time
	dns, connect time.Duration
}

// timedDialer dials like its net.Dialer and, when the dial was started for
// a request sent through a telltale Transport, tells that request's record
// when it dialed and how long DNS and the TCP connect took. The connection
// it returns is the dialer's own *net.TCPConn, unwrapped: its fast paths
// (ReadFrom, splice) and the type user code may assert on
// GotConnInfo.Conn are Go's.
type timedDialer struct{ d *net.Dialer }

func (td timedDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	rec := recordFrom(ctx)
	if rec == nil {
		return td.d.DialContext(ctx, network, addr)
	}
	// Dual-stack dialing may run several connects at once: keep the first
	// start and the first successful end.
	var (
		mu                        sync.Mutex
		dnsStart, dnsDone         time.Time
		connectStart, connectDone time.Time
	)
	stamp := func(t *time.Time, ok bool) {
		mu.Lock()
		if ok && t.IsZero() {
			*t = time.Now()
		}
		mu.Unlock()
	}
	start := time.Now()
	rec.dial.Store(&dialTimings{start: start}) // dialing: a slow call may be waiting for it
	c, err := td.d.DialContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		DNSStart:     func(httptrace.DNSStartInfo) { stamp(&dnsStart, true) },
		DNSDone:      func(httptrace.DNSDoneInfo) { stamp(&dnsDone, true) },
		ConnectStart: func(string, string) { stamp(&connectStart, true) },
		ConnectDone:  func(_, _ string, err error) { stamp(&connectDone, err == nil) },
	}), network, addr)
	done := time.Now()
	mu.Lock()
	dt := dialTimings{start: start, end: done}
	if !dnsStart.IsZero() && !dnsDone.IsZero() {
		dt.dns = dnsDone.Sub(dnsStart)
	}
	if !connectStart.IsZero() && !connectDone.IsZero() {
		dt.connect = connectDone.Sub(connectStart)
	} else {
		dt.connect = done.Sub(start)
	}
	mu.Unlock()
	rec.dial.Store(&dt)
	return c, err
}

// dialingAt reports whether the hardened dialer was dialing a connection
// for rec at at.
func (rec *record) dialingAt(at time.Time) bool {
	d := rec.dial.Load()
	return d != nil && !d.start.After(at) && (d.end.IsZero() || d.end.After(at))
}

// appendDial adds the timings of the connection dialed for rec, if any.
func appendDial(attrs []attribute.KeyValue, rec *record) []attribute.KeyValue {
	d := rec.dial.Load()
	if d == nil || d.end.IsZero() {
		return attrs
	}
	if d.dns > 0 {
		attrs = append(attrs, attribute.Int64(vocab.AttrConnDNS, d.dns.Milliseconds()))
	}
	return append(attrs, attribute.Int64(vocab.AttrConnConnect, d.connect.Milliseconds()))
}
