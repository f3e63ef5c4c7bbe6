package transport_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/telltale-go/telltale/transport"
)

func TestCloseDrainsSoTheConnectionIsReused(t *testing.T) {
	srv := payloadServer(t, 32<<10) // under the drain limit
	e := newEnv(t, nil)

	var reused []bool
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = append(reused, i.Reused) }}
	ctx := httptrace.WithClientTrace(context.Background(), trace)

	first := get(t, e.client, ctx, srv.URL)
	if _, err := first.Body.Read(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if err := first.Body.Close(); err != nil { // closed early: telltale drains the rest
		t.Fatal(err)
	}
	second := get(t, e.client, ctx, srv.URL)
	drainClose(second)
	if len(reused) != 2 || reused[0] || !reused[1] {
		t.Fatalf("GotConnInfo.Reused = %v, want [false true]", reused)
	}

	spans := e.waitEnded(t, 2)
	s := spans[0]
	if got := spanAttr(t, s, transport.AttrBodyDrainedBytes).AsInt64(); got != 32<<10-100 {
		t.Errorf("drained = %d, want %d", got, 32<<10-100)
	}
	if got := spanAttr(t, s, transport.AttrBodyReadBytes).AsInt64(); got != 100 {
		t.Errorf("read = %d, want 100", got)
	}
	if !spanAttr(t, s, transport.AttrBodyEOF).AsBool() {
		t.Error("eof = false after a complete drain")
	}
	if spanAttr(t, s, transport.AttrConnReused).AsBool() || !spanAttr(t, spans[1], transport.AttrConnReused).AsBool() {
		t.Error("telltale.conn.reused does not match httptrace")
	}
	if spanAttr(t, s, transport.AttrConnConnect).AsFloat64() <= 0 {
		t.Error("no connect time on the span of a new connection")
	}
	for _, name := range []string{transport.AttrTTFB, transport.AttrBodyOpen} {
		if spanAttr(t, s, name).AsFloat64() <= 0 {
			t.Errorf("%s not positive", name)
		}
	}
	if got := e.sum(t, transport.MetricBytesDrained, attribute.KeyValue{}); got != 32<<10-100 {
		t.Errorf("%s = %d", transport.MetricBytesDrained, got)
	}
}

func TestCloseBeyondTheDrainLimitDropsTheConnection(t *testing.T) {
	srv := payloadServer(t, 1<<20)
	e := newEnv(t, nil, transport.WithDrain(4<<10, time.Second))
	var reused []bool
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { reused = append(reused, i.Reused) }})
	first := get(t, e.client, ctx, srv.URL)
	_ = first.Body.Close()
	drainClose(get(t, e.client, ctx, srv.URL))
	if len(reused) != 2 || reused[1] {
		t.Fatalf("Reused = %v, want the second request on a new connection", reused)
	}
	s := e.waitEnded(t, 2)[0]
	if spanAttr(t, s, transport.AttrBodyEOF).AsBool() {
		t.Error("eof = true although the drain stopped at its limit")
	}
	if got := spanAttr(t, s, transport.AttrBodyDrainedBytes).AsInt64(); got < 4<<10 || got > 4<<10+1 {
		t.Errorf("drained = %d, want the limit", got)
	}
}

// errorType returns the error.type of the only ended span.
func errorType(t *testing.T, e *env) string {
	t.Helper()
	s := e.waitEnded(t, 1)[0]
	if s.Status().Code != codes.Error {
		t.Errorf("status = %v, want Error", s.Status())
	}
	return spanAttr(t, s, "error.type").AsString()
}

func TestDeadUpstreamIsConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now

	e := newEnv(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
	_, err = e.client.Do(req)
	if err == nil {
		t.Fatal("no error from a dead upstream")
	}
	if time.Since(start) > time.Second {
		t.Errorf("took %s, longer than the deadline", time.Since(start))
	}
	var te *transport.Error
	if !errors.As(err, &te) || te.Kind != transport.KindConnectionRefused {
		t.Errorf("err = %v, want a transport.Error of kind connection_refused", err)
	}
	if got := errorType(t, e); got != string(transport.KindConnectionRefused) {
		t.Errorf("error.type = %q", got)
	}
}

// blackHole accepts connections and never answers; it closes them when the
// test ends.
func blackHole(t *testing.T) string {
	t.Helper()
	return listenOnly(t, func(net.Conn) {})
}

func TestBlackHoleEndsAtTheContextDeadline(t *testing.T) {
	addr := blackHole(t)
	e := newEnv(t, nil)
	const deadline = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
	_, err := e.client.Do(req)
	took := time.Since(start)
	if err == nil {
		t.Fatal("no error from a black hole")
	}
	if took > deadline+200*time.Millisecond {
		t.Errorf("took %s with a %s deadline", took, deadline)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("errors.Is(err, DeadlineExceeded) = false for %v", err)
	}
	if got := errorType(t, e); got != string(transport.KindDeadlineExceeded) {
		t.Errorf("error.type = %q", got)
	}
}

func TestBlackHoleWithoutDeadlineHitsTheHeaderTimeout(t *testing.T) {
	addr := blackHole(t)
	base := transport.NewHardenedTransport()
	base.ResponseHeaderTimeout = 100 * time.Millisecond
	e := newEnv(t, base)
	_, err := e.client.Get("http://" + addr + "/")
	var te *transport.Error
	if !errors.As(err, &te) || te.Kind != transport.KindTimeoutAwaitingHeaders || !te.Timeout() {
		t.Fatalf("err = %v, want timeout_awaiting_headers", err)
	}
	if got := errorType(t, e); got != string(transport.KindTimeoutAwaitingHeaders) {
		t.Errorf("error.type = %q", got)
	}
}

func TestBackstopTimeoutAppliesWithoutADeadline(t *testing.T) {
	addr := blackHole(t)
	e := newEnv(t, nil, transport.WithTimeout(100*time.Millisecond))
	start := time.Now()
	_, err := e.client.Get("http://" + addr + "/")
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("err = %v after %s, want the 100ms backstop deadline", err, time.Since(start))
	}
}

func TestCanceledRequest(t *testing.T) {
	addr := blackHole(t)
	e := newEnv(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
	if _, err := e.client.Do(req); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want canceled", err)
	}
	if got := errorType(t, e); got != string(transport.KindCanceled) {
		t.Errorf("error.type = %q", got)
	}
}

func TestResetMidBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		_, _ = w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		conn, _, _ := http.NewResponseController(w).Hijack()
		_ = conn.(*net.TCPConn).SetLinger(0)
		_ = conn.Close()
	}))
	defer srv.Close()
	e := newEnv(t, nil)
	resp := get(t, e.client, context.Background(), srv.URL)
	_, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err == nil {
		t.Fatal("read a truncated body without error")
	}
	if got := errorType(t, e); got != string(transport.KindConnectionReset) {
		t.Errorf("error.type = %q", got)
	}
	transport.VerifyNoOpenBodies(t, e.tr)
}

func TestSlowUpstream(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(60 * time.Millisecond)
		_, _ = w.Write([]byte("late"))
	}))
	defer srv.Close()
	e := newEnv(t, nil, transport.WithSlowThreshold(20*time.Millisecond, 30*time.Millisecond))
	drainClose(get(t, e.client, context.Background(), srv.URL))
	s := e.waitEnded(t, 1)[0]
	if !spanAttr(t, s, transport.AttrSlow).AsBool() {
		t.Error("slow attribute missing")
	}
	var kinds []string
	for _, ev := range s.Events() {
		if ev.Name == transport.EventUpstreamSlow {
			k, _ := attrOf(ev.Attributes, transport.AttrSlowKind)
			kinds = append(kinds, k.AsString())
		}
	}
	if strings.Join(kinds, ",") != "ttfb,total" {
		t.Errorf("slow events = %v, want ttfb,total", kinds)
	}
	for _, kind := range []string{"ttfb", "total"} {
		if got := e.sum(t, transport.MetricUpstreamSlow, attribute.String(transport.AttrSlowKind, kind)); got != 1 {
			t.Errorf("%s{kind=%s} = %d, want 1", transport.MetricUpstreamSlow, kind, got)
		}
	}
	if got := e.sum(t, transport.MetricUpstreamSlow, attribute.String("server.address", "127.0.0.1")); got != 2 {
		t.Errorf("%s{server.address=127.0.0.1} = %d, want 2", transport.MetricUpstreamSlow, got)
	}
}

func TestDeadlinePropagation(t *testing.T) {
	got := make(chan string, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get(transport.TimeoutHeader)
	}))
	defer srv.Close()
	e := newEnv(t, nil, transport.WithDeadlinePropagation())
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	drainClose(resp)
	if req.Header.Get(transport.TimeoutHeader) != "" {
		t.Error("the caller's request was modified")
	}
	budget, err := transport.ParseTimeout(<-got)
	if err != nil || budget <= time.Second || budget > 1500*time.Millisecond {
		t.Errorf("upstream saw budget %v (%v), want (1s, 1.5s]", budget, err)
	}
	// Without a deadline the backstop is the caller's deadline; without
	// either, nothing is sent.
	drainClose(get(t, e.client, context.Background(), srv.URL))
	if budget, err := transport.ParseTimeout(<-got); err != nil || budget > transport.DefaultTimeout || budget < transport.DefaultTimeout-time.Second {
		t.Errorf("backstop sent as %v (%v), want about %v", budget, err, transport.DefaultTimeout)
	}
	none := newEnv(t, nil, transport.WithDeadlinePropagation(), transport.WithTimeout(0))
	drainClose(get(t, none.client, context.Background(), srv.URL))
	if h := <-got; h != "" {
		t.Errorf("header %q sent without any deadline", h)
	}
}

func TestNoBodyResponsesEndTheirSpans(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	e := newEnv(t, nil)
	resp := get(t, e.client, context.Background(), srv.URL) // not closed on purpose: there is nothing to leak
	if resp.Body != http.NoBody {
		t.Errorf("Body = %T, want http.NoBody", resp.Body)
	}
	head, err := e.client.Head(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_ = head.Body.Close()
	e.waitEnded(t, 2)
	transport.VerifyNoOpenBodies(t, e.tr)
}

func TestSwitchingProtocolsKeepsAWritableBody(t *testing.T) {
	srv := upgradeServer(t, func(rw io.ReadWriter, _ func()) {
		line, _ := bufio.NewReader(rw).ReadString('\n')
		_, _ = io.WriteString(rw, "echo: "+line)
	})
	e := newEnv(t, nil)
	resp := upgrade(t, e.client, srv.URL)
	rw, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		t.Fatalf("101 body is %T, not an io.ReadWriteCloser", resp.Body)
	}
	if _, err := rw.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(rw).ReadString('\n')
	if err != nil || line != "echo: hello\n" {
		t.Errorf("read %q, %v", line, err)
	}
	_ = rw.Close()
	transport.VerifyNoOpenBodies(t, e.tr)
}

func TestCredentialsAndQueryValuesAreRedacted(t *testing.T) {
	srv := payloadServer(t, 10)
	e := newEnv(t, nil)
	u := strings.Replace(srv.URL, "http://", "http://alice:pa55word@", 1) + "/p?api_key=K3Y&x=1#frag"
	drainClose(get(t, e.client, context.Background(), u))
	s := e.waitEnded(t, 1)[0]
	for _, a := range s.Attributes() {
		v := a.Value.String()
		for _, secret := range []string{"alice", "pa55word", "K3Y", "frag"} {
			if strings.Contains(v, secret) {
				t.Errorf("attribute %s = %q contains %q", a.Key, v, secret)
			}
		}
	}
	if u := spanAttr(t, s, "url.full").AsString(); !strings.Contains(u, "api_key=REDACTED") {
		t.Errorf("url.full = %q, want the query keys kept", u)
	}
}

func TestConcurrentCloseReadAndScopeEnd(t *testing.T) {
	srv := payloadServer(t, 128<<10)
	e := newEnv(t, nil)
	for range 50 {
		ctx, scope := transport.WithScope(context.Background())
		resp := get(t, e.client, ctx, srv.URL)
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				switch i {
				case 0:
					_, _ = io.Copy(io.Discard, resp.Body)
				case 1, 2:
					_ = resp.Body.Close()
				case 3:
					scope.End()
				}
			})
		}
		wg.Wait()
	}
	spans := e.waitEnded(t, 50)
	if len(spans) != 50 {
		t.Errorf("%d spans ended for 50 requests", len(spans))
	}
	opened := e.sum(t, transport.MetricBodiesOpen, attribute.KeyValue{})
	if opened != 0 {
		t.Errorf("open bodies metric = %d, want 0", opened)
	}
	transport.VerifyNoOpenBodies(t, e.tr)
}
