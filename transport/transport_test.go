package transport_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"

	"github.com/telltale-go/telltale/internal/faulty"
	"github.com/telltale-go/telltale/transport"
	"github.com/telltale-go/telltale/vocab"
)

// The error a caller gets is the very error the base transport returned —
// the same value, the same types inside *url.Error — so that code that
// inspects errors the way Go code does (urlErr.Err.(*net.OpError),
// err == context.DeadlineExceeded, a *tls.CertificateVerificationError)
// decides the same with telltale as without; the span still carries
// telltale's classification.
func TestErrorsAreTheBaseTransportsOwn(t *testing.T) {
	refused := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		return "http://" + addr
	}
	untrusted := func(t *testing.T) string { return tlsServer(t, false, payloadHandler(1)).URL }
	blackHole := func(t *testing.T) string { return "http://" + faulty.Listen(t, func(net.Conn) {}) }

	cases := []struct {
		name      string
		url       func(t *testing.T) string
		timeout   time.Duration // negative: canceled after that long
		check     func(t *testing.T, inner error)
		errorType string
	}{
		{"refused", refused, time.Second, func(t *testing.T, inner error) {
			if op, ok := inner.(*net.OpError); !ok || op.Op != "dial" {
				t.Errorf("url.Error.Err = %T %v, want the dial's *net.OpError", inner, inner)
			}
		}, vocab.ErrorConnectionRefused},
		{"untrusted certificate", untrusted, time.Second, func(t *testing.T, inner error) {
			if _, ok := inner.(*tls.CertificateVerificationError); !ok {
				t.Errorf("url.Error.Err = %T %v, want *tls.CertificateVerificationError", inner, inner)
			}
		}, vocab.ErrorTLS},
		{"deadline", blackHole, 100 * time.Millisecond, func(t *testing.T, inner error) {
			if inner != context.DeadlineExceeded {
				t.Errorf("url.Error.Err = %T %v, want context.DeadlineExceeded itself", inner, inner)
			}
		}, vocab.ErrorDeadlineExceeded},
		{"canceled", blackHole, -100 * time.Millisecond, func(t *testing.T, inner error) {
			if inner != context.Canceled {
				t.Errorf("url.Error.Err = %T %v, want context.Canceled itself", inner, inner)
			}
		}, vocab.ErrorCanceled},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := c.url(t)
			call := func(client *http.Client) *url.Error {
				d := c.timeout
				if d < 0 {
					d = time.Second
				}
				ctx, cancel := context.WithTimeout(context.Background(), d)
				defer cancel()
				if c.timeout < 0 { // the caller gives up first: canceled
					time.AfterFunc(-c.timeout, cancel)
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
				resp, err := client.Do(req)
				if err == nil {
					drainClose(resp)
					t.Fatal("no error")
				}
				var ue *url.Error
				if !errors.As(err, &ue) {
					t.Fatalf("err = %T, want *url.Error", err)
				}
				return ue
			}
			plain := call(&http.Client{Transport: transport.NewHardenedTransport()})
			e := newEnv(t, nil)
			wrapped := call(e.client)
			if reflect.TypeOf(plain.Err) != reflect.TypeOf(wrapped.Err) || plain.Err.Error() != wrapped.Err.Error() {
				t.Errorf("through telltale: %T %q; plain: %T %q", wrapped.Err, wrapped.Err, plain.Err, plain.Err)
			}
			c.check(t, wrapped.Err)
			s := e.waitEnded(t, 1)[0]
			if got := errorType(s); got != c.errorType || s.Status().Code != codes.Error {
				t.Errorf("span: error.type %q, status %v; want %q, Error", got, s.Status(), c.errorType)
			}
		})
	}
}

// Response.Request is the request the caller sent, as with the plain
// transport, not the copy telltale and otelhttp forwarded.
func TestResponseRequestIsTheCallers(t *testing.T) {
	srv := payloadServer(t, 10)
	e := newEnv(t, nil)
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	resp, err := e.tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	drainClose(resp)
	if resp.Request != req {
		t.Errorf("resp.Request = %p (traceparent %q), want the caller's %p", resp.Request, resp.Request.Header.Get("Traceparent"), req)
	}
}

// A hand-written RoundTripper's response — the most common test double —
// reaches the caller with its body whatever its ContentLength says; a nil
// body becomes http.NoBody, as with otelhttp.
func TestTestDoubleResponsesKeepTheirBody(t *testing.T) {
	double := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		switch r.URL.Path {
		case "/nil":
			return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Request: r}, nil
		default:
			return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader("hello")), Request: r}, nil
		}
	})
	e := newEnv(t, double)
	resp := get(t, e.client, context.Background(), "http://double.test/body")
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || string(b) != "hello" {
		t.Errorf("body = %q, %v; want hello", b, err)
	}
	resp = get(t, e.client, context.Background(), "http://double.test/nil")
	if resp.Body != http.NoBody {
		t.Errorf("nil body became %T, want http.NoBody", resp.Body)
	}
	e.waitEnded(t, 2)
	transport.VerifyNoOpenBodies(t, e.tr)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Construction never panics, whatever replaced http.DefaultTransport: the
// hardened transport then starts from Go's documented defaults.
func TestNewWithAReplacedDefaultTransport(t *testing.T) {
	saved := http.DefaultTransport
	defer func() { http.DefaultTransport = saved }()
	srv := payloadServer(t, 10)
	for name, rt := range map[string]http.RoundTripper{
		"a test double":      roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, errors.New("double") }),
		"a telltale wrapper": transport.New(saved.(*http.Transport).Clone()),
	} {
		t.Run(name, func(t *testing.T) {
			http.DefaultTransport = rt
			h := transport.NewHardenedTransport()
			if h.Proxy == nil || !h.ForceAttemptHTTP2 || h.MaxIdleConnsPerHost != 100 || h.ResponseHeaderTimeout != 10*time.Second {
				t.Errorf("hardened transport from Go's defaults: %+v", h)
			}
			e := newEnv(t, nil)
			drainClose(get(t, e.client, context.Background(), srv.URL))
			if tr, ok := rt.(*transport.Transport); ok {
				_ = tr.Close()
			}
		})
	}
}

// Trailers reach the caller's response when the body ends, as with the
// plain transport: announced or not (grpc-go and http.TrailerPrefix do not
// announce them), over HTTP/1.1 chunked and HTTP/2, and on an HTTP/2
// response with Content-Length: 0. A body closed early is drained to its
// end, and then its trailers are known too, where the plain transport
// leaves them unread.
func TestTrailersReachTheCaller(t *testing.T) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("announce") != "" {
			w.Header().Set("Trailer", "X-Checksum")
		}
		if r.URL.Query().Get("empty") != "" {
			w.Header().Set("Content-Length", "0")
		}
		w.WriteHeader(http.StatusOK)
		if r.URL.Query().Get("empty") == "" {
			_, _ = w.Write(bytes.Repeat([]byte("x"), 4096))
		}
		w.Header().Set("X-Checksum", "abc")
		w.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
	})
	type seen struct {
		status  int
		body    int
		trailer http.Header
	}
	fetch := func(t *testing.T, c *http.Client, u string, closeEarly bool) seen {
		resp := get(t, c, context.Background(), u)
		n := 4096
		if r := resp.Request; r != nil && r.URL.Query().Get("empty") != "" {
			n = 0
		}
		if closeEarly {
			_ = resp.Body.Close() // the drain reaches the end: trailers come with it
		} else {
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != n {
				t.Errorf("read %d bytes, want %d", len(b), n)
			}
			_ = resp.Body.Close()
		}
		return seen{resp.StatusCode, n, resp.Trailer}
	}
	for _, p := range protos {
		t.Run(p.name, func(t *testing.T) {
			srv := tlsServer(t, p.h2, handler)
			e := newEnv(t, hardenedFor(srv))
			plain := &http.Client{Transport: hardenedFor(srv)}
			for _, q := range []string{"", "announce=1", "empty=1"} {
				if q == "empty=1" && !p.h2 {
					continue // HTTP/1.1 cannot send trailers after a Content-Length body
				}
				for _, early := range []bool{false, true} {
					u := srv.URL + "/?" + q
					want, got := fetch(t, plain, u, false), fetch(t, e.client, u, early)
					if !reflect.DeepEqual(want, got) {
						t.Errorf("%s (close early %v): through telltale %+v, plain %+v", q, early, got, want)
					}
					if got.trailer.Get("Grpc-Status") != "0" {
						t.Errorf("%s (close early %v): trailers %v, want Grpc-Status", q, early, got.trailer)
					}
				}
			}
			transport.VerifyNoOpenBodies(t, e.tr)
		})
	}
}

// Request bodies reach the upstream whole, over plain HTTP/1.1, TLS
// HTTP/1.1 and HTTP/2, directly and through a 307 redirect (GetBody
// replay); the caller's request is not changed, each hop has its span, and
// no body is left open.
func TestRequestBodies(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		w.Header().Set("X-Len", strconv.FormatInt(n, 10))
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
				if err != nil || !bytes.Equal(got, want[:]) || resp.Header.Get("X-Len") != strconv.Itoa(len(payload)) {
					t.Errorf("POST %s: upstream got %s bytes, digest match %v, err %v", path, resp.Header.Get("X-Len"), bytes.Equal(got, want[:]), err)
				}
				if !reflect.DeepEqual(req.Header, before) {
					t.Errorf("the caller's request headers were changed: %v", req.Header)
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

// Responses that cannot hold anything — HEAD, 204, and over HTTP/2 every
// response whose headers end the stream — are handed over as the base
// transport made them, end their spans at once, and are never open bodies:
// leaving them unclosed is not a leak.
func TestBodilessResponsesAreNotOpenBodies(t *testing.T) {
	for _, p := range protos {
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
			plain := &http.Client{Transport: hardenedFor(srv)}
			for _, path := range []string{"/204", "/empty"} {
				want := get(t, plain, context.Background(), srv.URL+path)
				got := get(t, e.client, context.Background(), srv.URL+path) // not closed: nothing to read
				if reflect.TypeOf(got.Body) != reflect.TypeOf(want.Body) {
					t.Errorf("%s: body %T, plain %T", path, got.Body, want.Body)
				}
				_ = want.Body.Close()
			}
			head, err := e.client.Head(srv.URL + "/")
			if err != nil {
				t.Fatal(err)
			}
			e.waitEnded(t, 3)
			if err := transport.FindOpenBodies(e.tr, 0); err != nil {
				t.Errorf("bodiless responses tracked as open: %v", err)
			}
			_ = head.Body.Close()
		})
	}
}

// An upgraded connection (101 Switching Protocols) stays a writable
// connection with CloseWrite, as net/http's is; closing it does not drain
// it like a response body.
func TestSwitchingProtocols(t *testing.T) {
	t.Run("read and write", func(t *testing.T) {
		srv := upgradeServer(t, echoLine)
		e := newEnv(t, nil)
		resp := upgrade(t, e.client, srv.URL)
		rw, ok := resp.Body.(io.ReadWriteCloser)
		if !ok {
			t.Fatalf("101 body is %T, not an io.ReadWriteCloser", resp.Body)
		}
		if _, err := rw.Write([]byte("hello\n")); err != nil {
			t.Fatal(err)
		}
		line, err := io.ReadAll(io.LimitReader(rw, int64(len("echo: hello\n"))))
		if err != nil || string(line) != "echo: hello\n" {
			t.Errorf("read %q, %v", line, err)
		}
		_ = rw.Close()
		transport.VerifyNoOpenBodies(t, e.tr)
	})
	t.Run("close write", func(t *testing.T) {
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
	})
	t.Run("close does not drain", func(t *testing.T) {
		peerSawClose := make(chan struct{})
		srv := upgradeServer(t, func(rw io.ReadWriter, _ func()) {
			_, _ = io.Copy(io.Discard, rw) // a quiet peer, until the client closes
			close(peerSawClose)
		})
		e := newEnv(t, nil, transport.WithDrain(256<<10, time.Second))
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
	})
}

// A request with a nil Header gets the base transport's own answer, not a
// panic.
func TestNilRequestHeader(t *testing.T) {
	srv := payloadServer(t, 10)
	u, _ := url.Parse(srv.URL)
	e := newEnv(t, nil, transport.WithDeadlinePropagation())
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req := (&http.Request{Method: http.MethodGet, URL: u, Host: u.Host}).WithContext(ctx)
	_, plainErr := transport.NewHardenedTransport().RoundTrip(req)
	resp, err := e.tr.RoundTrip(req)
	if err == nil {
		drainClose(resp)
	}
	if (err == nil) != (plainErr == nil) || err != nil && err.Error() != plainErr.Error() {
		t.Errorf("telltale: %v; plain: %v", err, plainErr)
	}
}
