package transport_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/telltale-go/telltale/transport"
	"github.com/telltale-go/telltale/vocab"
)

// A healthy call's span is otelhttp's, with the URL redacted and the
// deadline budget it was sent with: no body accounting, no timings.
func TestHealthyCallSpanCarriesLittle(t *testing.T) {
	srv := payloadServer(t, 4<<10)
	e := newEnv(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	drainClose(get(t, e.client, ctx, srv.URL))
	s := e.waitEnded(t, 1)[0]
	if s.Status().Code != codes.Unset {
		t.Errorf("status %v", s.Status())
	}
	if v := spanAttr(t, s, vocab.AttrDeadlineRemaining).AsInt64(); v <= 0 || v > 1000 {
		t.Errorf("%s = %v", vocab.AttrDeadlineRemaining, v)
	}
	for _, a := range s.Attributes() {
		if k := string(a.Key); strings.HasPrefix(k, "telltale.") && k != vocab.AttrDeadlineRemaining {
			t.Errorf("healthy span carries %s", k)
		}
	}
	if len(s.Events()) != 0 {
		t.Errorf("healthy span has events %v", s.Events())
	}
}

// An anomalous call's span carries the evidence: how its body was read and
// ended, the times, the connection dialed for it.
func TestAnomalousCallSpanCarriesTheEvidence(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, strings.Repeat("upstream exploded ", 100), http.StatusBadGateway)
	}))
	defer srv.Close()
	e := newEnv(t, nil)
	resp := get(t, e.client, context.Background(), srv.URL)
	_, _ = resp.Body.Read(make([]byte, 10))
	_ = resp.Body.Close()
	s := e.waitEnded(t, 1)[0]
	if s.Status().Code != codes.Error || errorType(s) != "502" {
		t.Errorf("status %v, error.type %q; want Error, 502 (otelhttp's)", s.Status(), errorType(s))
	}
	if got := spanAttr(t, s, vocab.AttrBodyEnd).AsString(); got != vocab.BodyEndClosedDrained {
		t.Errorf("%s = %q", vocab.AttrBodyEnd, got)
	}
	if got := spanAttr(t, s, vocab.AttrBodyReadBytes).AsInt64(); got != 10 {
		t.Errorf("%s = %d, want 10", vocab.AttrBodyReadBytes, got)
	}
	if got := spanAttr(t, s, vocab.AttrBodyDrainedBytes).AsInt64(); got <= 0 {
		t.Errorf("%s = %d", vocab.AttrBodyDrainedBytes, got)
	}
	for _, k := range []string{vocab.AttrTTFB, vocab.AttrBodyOpen, vocab.AttrConnConnect} {
		if v := spanAttr(t, s, k); v.Type() != attribute.INT64 || v.AsInt64() < 0 {
			t.Errorf("%s = %v (%v), want whole milliseconds", k, v.Emit(), v.Type())
		}
	}
}

// A body whose read fails is an anomaly: the span has the classified error.
func TestReadErrorIsOnTheSpan(t *testing.T) {
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
	s := e.waitEnded(t, 1)[0]
	if errorType(s) != vocab.ErrorConnectionReset || s.Status().Code != codes.Error {
		t.Errorf("error.type %q, status %v", errorType(s), s.Status())
	}
	if got := spanAttr(t, s, vocab.AttrBodyEnd).AsString(); got != vocab.BodyEndReadError {
		t.Errorf("%s = %q", vocab.AttrBodyEnd, got)
	}
	transport.VerifyNoOpenBodies(t, e.tr)
}

// No credential, query value or fragment reaches the span.
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
