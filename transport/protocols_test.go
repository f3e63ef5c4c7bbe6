package transport_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/telltale-go/telltale/transport"
)

// tlsServer starts an httptest TLS server, speaking HTTP/2 when h2 is set.
func tlsServer(t *testing.T, h2 bool, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = h2
	// net/http may dial spare connections for concurrent h2 requests and
	// drop them before the handshake: keep the test log readable.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// hardenedFor is the hardened transport New(nil) would build, trusting srv.
func hardenedFor(srv *httptest.Server) *http.Transport {
	base := transport.NewHardenedTransport()
	base.TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	return base
}

func payloadHandler(size int) http.HandlerFunc {
	payload := make([]byte, size)
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(payload)
	}
}

// spansWithin waits up to d for n ended spans and returns what it has.
func spansWithin(e *env, n int, d time.Duration) []sdktrace.ReadOnlySpan {
	deadline := time.Now().Add(d)
	for {
		s := e.ended()
		if len(s) >= n || time.Now().After(deadline) {
			return s
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func protos() []struct {
	name string
	h2   bool
} {
	return []struct {
		name string
		h2   bool
	}{{"http1.1+tls", false}, {"h2", true}}
}

// TestTLSBodiesSpansAndConnTimings runs the hardened transport (New(nil)'s
// base) against real TLS servers, HTTP/1.1 and HTTP/2: bodies arrive whole,
// an early Close drains, spans carry TLS and connect timings for the new
// connection, reuse for the next one, and every span ends.
func TestTLSBodiesSpansAndConnTimings(t *testing.T) {
	for _, p := range protos() {
		t.Run(p.name, func(t *testing.T) {
			const size = 32 << 10
			srv := tlsServer(t, p.h2, payloadHandler(size))
			e := newEnv(t, hardenedFor(srv))

			first := get(t, e.client, context.Background(), srv.URL)
			if wantMajor := map[bool]int{false: 1, true: 2}[p.h2]; first.ProtoMajor != wantMajor || first.TLS == nil {
				t.Fatalf("proto %s, TLS %v; want HTTP/%d over TLS", first.Proto, first.TLS != nil, wantMajor)
			}
			if _, err := io.ReadFull(first.Body, make([]byte, 100)); err != nil {
				t.Fatal(err)
			}
			if err := first.Body.Close(); err != nil {
				t.Fatal(err)
			}
			second := get(t, e.client, context.Background(), srv.URL)
			b, err := io.ReadAll(second.Body)
			_ = second.Body.Close()
			if err != nil || len(b) != size {
				t.Fatalf("read %d bytes, %v", len(b), err)
			}

			// Concurrent requests: on h2 they share one connection.
			var wg sync.WaitGroup
			for range 20 {
				wg.Go(func() {
					req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
					resp, err := e.client.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					n, err := io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
					if err != nil || n != size {
						t.Errorf("concurrent read %d bytes, %v", n, err)
					}
				})
			}
			wg.Wait()

			spans := e.waitEnded(t, 22)
			s0, s1 := spans[0], spans[1]
			if spanAttr(t, s0, transport.AttrConnReused).AsBool() {
				t.Error("first request: conn.reused = true")
			}
			if !spanAttr(t, s1, transport.AttrConnReused).AsBool() {
				t.Error("second request: conn.reused = false")
			}
			if v := spanAttr(t, s0, transport.AttrConnTLS).AsFloat64(); v <= 0 {
				t.Errorf("conn.tls_ms = %v on a new TLS connection", v)
			}
			if v := spanAttr(t, s0, transport.AttrConnConnect).AsFloat64(); v <= 0 {
				t.Errorf("conn.connect_ms = %v on a new connection", v)
			}
			if _, ok := attrOf(s1.Attributes(), transport.AttrConnTLS); ok {
				t.Error("a reused connection reports a TLS handshake time")
			}
			if got := spanAttr(t, s0, transport.AttrBodyReadBytes).AsInt64(); got != 100 {
				t.Errorf("first: read = %d, want 100", got)
			}
			if got := spanAttr(t, s0, transport.AttrBodyDrainedBytes).AsInt64(); got != size-100 {
				t.Errorf("first: drained = %d, want %d", got, size-100)
			}
			for _, s := range spans {
				if s.Status().Code == codes.Error {
					t.Errorf("span status %v", s.Status())
				}
			}
			for _, s := range spans[1:] {
				if got := spanAttr(t, s, transport.AttrBodyEnd).AsString(); got != "eof" {
					t.Errorf("body.end = %q, want eof", got)
				}
			}
			if got := e.sum(t, transport.MetricBodiesOpen, attribute.KeyValue{}); got != 0 {
				t.Errorf("open bodies metric = %d", got)
			}
			transport.VerifyNoOpenBodies(t, e.tr)
		})
	}
}

// forget makes a request and drops the body without closing it; it returns
// the line of the request.
//
//go:noinline
func forget(t *testing.T, c *http.Client, url string) (string, int) {
	resp, err := c.Get(url)
	file, line := here()
	line--
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.StatusCode
	return file, line
}

// TestTLSForgottenBodiesAreReportedAndRepaired checks the GC-based leak check
// over TLS, HTTP/1.1 and HTTP/2: a forgotten body is found, its span exported
// with the leak event naming the caller's line, and the repair frees the
// connections, streams and server handlers (goroutines back to baseline).
func TestTLSForgottenBodiesAreReportedAndRepaired(t *testing.T) {
	for _, p := range protos() {
		t.Run(p.name, func(t *testing.T) {
			srv := tlsServer(t, p.h2, payloadHandler(1<<20)) // larger than socket buffers and h2 windows
			e := newEnv(t, hardenedFor(srv))
			baseline := runtime.NumGoroutine()

			const leaks = 5
			var file string
			var line int
			for range leaks {
				file, line = forget(t, e.client, srv.URL+"/x?token=s3cret")
			}
			spans := collectLeaks(t, e, leaks)
			for _, s := range spans {
				ev := leakEvent(t, s)
				checkCallSite(t, ev, file, line)
				for _, a := range append(s.Attributes(), ev.Attributes...) {
					if strings.Contains(a.Value.String(), "s3cret") {
						t.Errorf("%s leaks the query value: %s", a.Key, a.Value.String())
					}
				}
			}
			if got := e.sum(t, transport.MetricBodiesOpen, attribute.KeyValue{}); got != 0 {
				t.Errorf("open bodies metric = %d", got)
			}
			e.tr.CloseIdleConnections()
			waitGoroutines(t, baseline)
		})
	}
}

// TestTLSScopeEndRepairs checks the scope check over TLS, HTTP/1.1 and HTTP/2.
func TestTLSScopeEndRepairs(t *testing.T) {
	for _, p := range protos() {
		t.Run(p.name, func(t *testing.T) {
			srv := tlsServer(t, p.h2, payloadHandler(1<<20))
			e := newEnv(t, hardenedFor(srv))
			ctx, scope := transport.WithScope(context.Background())
			resp := get(t, e.client, ctx, srv.URL)
			if _, err := resp.Body.Read(make([]byte, 10)); err != nil {
				t.Fatal(err)
			}
			leaks := scope.End()
			if len(leaks) != 1 || !leaks[0].Repaired {
				t.Fatalf("leaks = %+v", leaks)
			}
			if _, err := resp.Body.Read(make([]byte, 10)); !errors.Is(err, transport.ErrLeakRepaired) {
				t.Errorf("read after repair: %v", err)
			}
			_ = resp.Body.Close()
			s := e.waitEnded(t, 1)[0]
			leakEvent(t, s)
			// The stream (h2) or connection (h1) is gone: the next request works.
			drainClose(get(t, e.client, context.Background(), srv.URL))
			e.waitEnded(t, 2)
			transport.VerifyNoOpenBodies(t, e.tr)
		})
	}
}

// TestRequestBodies sends request bodies over plain HTTP/1.1, TLS HTTP/1.1
// and HTTP/2, directly and through a 307 redirect (GetBody replay): the
// upstream receives every byte, the caller's request is not modified, each
// hop has its own span and no body is left open.
func TestRequestBodies(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		w.Header().Set("X-Len", sprintf("%d", n))
		_, _ = w.Write(h.Sum(nil))
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/echo", http.StatusTemporaryRedirect)
	})
	payload := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	want := sha256.Sum256(payload)

	servers := map[string]func(t *testing.T) (*httptest.Server, http.RoundTripper){
		"http1.1": func(t *testing.T) (*httptest.Server, http.RoundTripper) {
			srv := httptest.NewServer(mux)
			t.Cleanup(srv.Close)
			return srv, nil
		},
		"http1.1+tls": func(t *testing.T) (*httptest.Server, http.RoundTripper) {
			srv := tlsServer(t, false, mux)
			return srv, hardenedFor(srv)
		},
		"h2": func(t *testing.T) (*httptest.Server, http.RoundTripper) {
			srv := tlsServer(t, true, mux)
			return srv, hardenedFor(srv)
		},
	}
	for name, start := range servers {
		t.Run(name, func(t *testing.T) {
			srv, base := start(t)
			e := newEnv(t, base, transport.WithDeadlinePropagation())
			for i, path := range []string{"/echo", "/redirect"} {
				req, _ := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader(payload))
				req.Header.Set("X-Caller", "kept")
				before := req.Header.Clone()
				resp, err := e.client.Do(req)
				if err != nil {
					t.Fatalf("POST %s: %v", path, err)
				}
				got, err := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if err != nil || !bytes.Equal(got, want[:]) || resp.Header.Get("X-Len") != sprintf("%d", len(payload)) {
					t.Errorf("POST %s: upstream got %s bytes, digest match %v, err %v", path, resp.Header.Get("X-Len"), bytes.Equal(got, want[:]), err)
				}
				if len(req.Header) != len(before) || req.Header.Get("traceparent") != "" || req.Header.Get(transport.TimeoutHeader) != "" {
					t.Errorf("the caller's request headers were modified: %v", req.Header)
				}
				wantSpans := []int{1, 3}[i]
				if n := len(e.waitEnded(t, wantSpans)); n != wantSpans {
					t.Errorf("%d spans after %s, want %d", n, path, wantSpans)
				}
			}
			transport.VerifyNoOpenBodies(t, e.tr)
		})
	}
}

// Regression (found in review, fixed): on HTTP/2, net/http returns its own empty body (not http.NoBody)
// for HEAD, 204, 304 and for responses whose HEADERS frame ends the stream.
// telltale tracks it as an open body: the span is not ended until the
// application closes it, and a 204 left unclosed — fine on HTTP/1.1, where
// telltale sees http.NoBody — is reported as an open body and later as a
// leak.
func TestBodilessResponsesOverHTTP2AreNotOpenBodies(t *testing.T) {
	for _, p := range protos() {
		t.Run(p.name, func(t *testing.T) {
			srv := tlsServer(t, p.h2, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/204":
					w.WriteHeader(http.StatusNoContent)
				case "/empty":
					w.Header().Set("Content-Length", "0")
				default:
					_, _ = w.Write([]byte("hello"))
				}
			}))
			e := newEnv(t, hardenedFor(srv))
			var bodies []io.Closer
			for _, path := range []string{"/204", "/empty"} {
				resp := get(t, e.client, context.Background(), srv.URL+path) // not closed: nothing to read
				bodies = append(bodies, resp.Body)
			}
			head, err := e.client.Head(srv.URL + "/")
			if err != nil {
				t.Fatal(err)
			}
			bodies = append(bodies, head.Body)

			if n := len(spansWithin(e, 3, time.Second)); n != 3 {
				t.Errorf("%d of 3 spans ended for bodiless responses (HEAD, 204, Content-Length: 0)", n)
			}
			if err := transport.FindOpenBodies(e.tr, 0); err != nil {
				t.Errorf("bodiless responses tracked as open: %v", err)
			}
			for _, b := range bodies {
				_ = b.Close()
			}
		})
	}
}

type readResult struct {
	n   int
	err error
}

// readOnce makes one Read; r is not used after it.
//
//go:noinline
func readOnce(r io.Reader, res chan<- readResult) {
	buf := make([]byte, 64)
	n, err := r.Read(buf)
	res <- readResult{n, err}
}

// Regression (found in review, fixed): (*body).Read does not keep the body reachable while it reads.
// A goroutine blocked in Read on a slow upstream holds the body only as the
// receiver of that call; the garbage collector may find it unreachable, and
// the cleanup reports it as leaked and repairs it — closing the body under
// the Read in progress, which fails with ErrLeakRepaired instead of
// returning the data.
func TestBodyBeingReadIsNotReportedUnreachable(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select { // a slow upstream: the body comes later
		case <-release:
		case <-r.Context().Done():
		}
		_, _ = w.Write([]byte("0123456789"))
	}))
	defer srv.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	e := newEnv(t, nil)

	res := make(chan readResult, 1)
	func() {
		resp := get(t, e.client, context.Background(), srv.URL)
		go readOnce(resp.Body, res)
	}()
	time.Sleep(50 * time.Millisecond) // the Read is blocked on the network
	for range 20 {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	leakedWhileReading := e.tr.Stats().Leaked
	close(release)
	r := <-res
	if leakedWhileReading != 0 {
		t.Errorf("a body blocked in Read was reported as leaked (%d leaks)", leakedWhileReading)
	}
	if r.err != nil && r.err != io.EOF || r.n != 10 {
		t.Errorf("Read = %d, %v; want 10 bytes", r.n, r.err)
	}
}

// upgradeServer answers every request with 101 and then runs fn on the
// hijacked connection.
func upgradeServer(t *testing.T, fn func(rw io.ReadWriter, closeWrite func())) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		_ = brw.Flush()
		fn(struct {
			io.Reader
			io.Writer
		}{brw, conn}, func() { _ = conn.(interface{ CloseWrite() error }).CloseWrite() })
	}))
	t.Cleanup(srv.Close)
	return srv
}

func upgrade(t *testing.T, c *http.Client, url string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	return resp
}

// Regression (found in review, fixed): closing a 101 Switching Protocols body (a connection: WebSocket,
// httputil.ReverseProxy's backend tunnel) runs the response drain on it:
// Close reads and discards up to the drain limit of whatever the peer
// sends, and on a quiet peer blocks for the whole drain timeout before it
// closes the connection.
func TestUpgradedConnectionCloseDoesNotDrain(t *testing.T) {
	peerSawClose := make(chan struct{})
	srv := upgradeServer(t, func(rw io.ReadWriter, _ func()) {
		_, _ = io.Copy(io.Discard, rw) // quiet peer, until the client closes
		close(peerSawClose)
	})
	e := newEnv(t, nil, transport.WithDrain(transport.DefaultDrainLimit, time.Second))
	resp := upgrade(t, e.client, srv.URL)
	start := time.Now()
	_ = resp.Body.Close()
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("Close of an upgraded connection took %s: it was drained like a response body", took)
	}
	select {
	case <-peerSawClose:
	case <-time.After(2 * time.Second):
		t.Error("the peer never saw the connection close")
	}
	e.waitEnded(t, 1)
}

// Regression (found in review, fixed): the 101 body net/http returns implements CloseWrite (half-close),
// which httputil.ReverseProxy uses to tell the backend the client is done
// and still read its answer. telltale's upgraded body hides it.
func TestUpgradedBodyKeepsCloseWrite(t *testing.T) {
	srv := upgradeServer(t, func(rw io.ReadWriter, closeWrite func()) {
		got, _ := io.ReadAll(rw) // until the client half-closes
		_, _ = rw.Write(append(got, " bye"...))
		closeWrite()
	})
	e := newEnv(t, nil)
	resp := upgrade(t, e.client, srv.URL)
	defer resp.Body.Close()
	cw, ok := resp.Body.(interface{ CloseWrite() error })
	if !ok {
		t.Fatalf("101 body %T has no CloseWrite (net/http's has)", resp.Body)
	}
	if _, err := resp.Body.(io.Writer).Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	if err := cw.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	if err != nil || string(got) != "hi bye" {
		t.Errorf("read %q, %v; want \"hi bye\"", got, err)
	}
}

// blockingHandler is a slog handler stuck on a slow sink until release.
type blockingHandler struct {
	entered chan string // the stack of the goroutine that logs
	release chan struct{}
	once    *sync.Once
}

func (h blockingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h blockingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h blockingHandler) WithGroup(string) slog.Handler            { return h }
func (h blockingHandler) Handle(context.Context, slog.Record) error {
	h.once.Do(func() {
		buf := make([]byte, 64<<10)
		h.entered <- string(buf[:runtime.Stack(buf, false)])
	})
	<-h.release
	return nil
}

// Regression (found in review, fixed): the unreachable check reports the leak — log line, span end (a
// synchronous exporter), repair (closing a connection) — on the runtime's
// cleanup goroutine. There are max(GOMAXPROCS/4, 1) of them for the whole
// process, and runtime.AddCleanup's contract says a cleanup that may take
// long must start a goroutine: a slow log sink or exporter stalls every
// cleanup and finalizer of the process (os.File, net.Conn, unique, ...).
func TestLeakReportDoesNotRunOnTheRuntimeCleanupGoroutine(t *testing.T) {
	srv := payloadServer(t, 64<<10)
	h := blockingHandler{entered: make(chan string, 1), release: make(chan struct{}), once: &sync.Once{}}
	e := newEnv(t, nil, transport.WithLogger(slog.New(h)))
	released := false
	release := func() {
		if !released {
			released = true
			close(h.release)
		}
	}
	defer release()

	forget(t, e.client, srv.URL)
	var stack string
	deadline := time.After(5 * time.Second)
wait:
	for {
		runtime.GC()
		select {
		case stack = <-h.entered:
			break wait
		case <-deadline:
			t.Fatal("the forgotten body was never reported")
		case <-time.After(10 * time.Millisecond):
		}
	}
	if strings.Contains(stack, "runtime.runCleanups") || strings.Contains(stack, "runtime.unique_runtime") {
		t.Errorf("the leak is reported on the runtime's cleanup goroutine:\n%s", stack)
	}

	// While the report is stuck on the log sink, the process's other
	// cleanups must still run.
	other := make(chan struct{})
	func() {
		obj := &struct {
			p *int
			_ [64]byte
		}{p: new(int)}
		runtime.AddCleanup(obj, func(c chan struct{}) { close(c) }, other)
	}()
	ran := false
	for end := time.Now().Add(time.Second); time.Now().Before(end) && !ran; {
		runtime.GC()
		select {
		case <-other:
			ran = true
		case <-time.After(10 * time.Millisecond):
		}
	}
	if !ran {
		t.Errorf("another package's cleanup did not run while a leak report was blocked (GOMAXPROCS=%d)", runtime.GOMAXPROCS(0))
	}
	release()
	<-other
	e.waitEnded(t, 1)
}

// Regression (found in review, fixed): Transport.Close reports only the bodies in the registry. A body
// past WithMaxTrackedBodies (a leak storm, exactly when it matters) is not
// in it: still open at shutdown, its span is never ended and never exported,
// although the cap's documentation promises that such bodies "still end
// their spans", and issue 5 that no span is lost on a clean shutdown.
func TestCloseEndsTheSpansOfUntrackedBodies(t *testing.T) {
	srv := payloadServer(t, 64<<10)
	exp := &keepingExporter{}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp))
	tr := transport.New(nil, transport.WithTracerProvider(tp), transport.WithLogger(discardLogger()),
		transport.WithMaxTrackedBodies(1))
	c := &http.Client{Transport: tr}
	a := get(t, c, context.Background(), srv.URL) // tracked
	b := get(t, c, context.Background(), srv.URL) // past the cap
	if st := tr.Stats(); st.Untracked != 1 {
		t.Fatalf("stats = %+v, want 1 untracked", st)
	}
	_ = tr.Close()
	_ = tp.Shutdown(context.Background())
	exp.mu.Lock()
	n := len(exp.spans)
	exp.mu.Unlock()
	if n != 2 {
		t.Errorf("exported %d spans for 2 bodies open at shutdown", n)
	}
	_ = a.Body.Close()
	_ = b.Body.Close()
}
