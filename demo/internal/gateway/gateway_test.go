package gateway_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/telltale-go/telltale/demo/internal/gateway"
	"github.com/telltale-go/telltale/demo/internal/upstream"
	"github.com/telltale-go/telltale/vocab"
)

// No goleak.VerifyTestMain: the naive gateway's leak is the point of its
// test, and leaves a connection's goroutines behind for good. The guarded
// tests check for leaks one by one.

// setup starts three real upstreams and the gateway built by mk.
func setup(t *testing.T, mk func(gateway.Config) (http.Handler, func() error)) (*httptest.Server, []*upstream.Server, *tracetest.SpanRecorder) {
	t.Helper()
	ups, err := gateway.StartUpstreams(upstream.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ups {
		t.Cleanup(func() { _ = s.Close() })
	}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	h, closeFn := mk(gateway.Config{Upstreams: gateway.Describe(ups), TracerProvider: tp})
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		_ = closeFn()
	})
	return srv, ups, rec
}

func naive(cfg gateway.Config) (http.Handler, func() error) {
	return gateway.NewNaive(cfg), func() error {
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		return nil
	}
}

// firstFix is the naive gateway with the first fix, its timeout shortened
// for the test.
func firstFix(cfg gateway.Config) (http.Handler, func() error) {
	cfg.FirstFix = 200 * time.Millisecond
	return naive(cfg)
}

func call(t *testing.T, url string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}

func TestGuardedPartialFeedWhenAnOptionalUpstreamIsDead(t *testing.T) {
	forEachEcho(t, testGuardedPartialFeed)
}

func testGuardedPartialFeed(t *testing.T, guarded func(gateway.Config) (http.Handler, func() error)) {
	verifyNoLeaks(t)
	srv, ups, _ := setup(t, guarded)
	defer http.DefaultClient.CloseIdleConnections()
	if err := ups[1].SetFault(upstream.Dead); err != nil {
		t.Fatal(err)
	}
	status, h, body := call(t, srv.URL+gateway.FeedPath)
	var feed gateway.Feed
	if err := json.Unmarshal(body, &feed); err != nil {
		t.Fatal(err)
	}
	if status != http.StatusOK || h.Get(gateway.MissingHeader) != "users" || len(feed.Parts["articles"]) == 0 || len(feed.Parts["ads"]) == 0 {
		t.Errorf("status %d, missing %q, feed %s", status, h.Get(gateway.MissingHeader), body)
	}
	if h.Get(gateway.TraceIDHeader) == "" {
		t.Error("no trace id header")
	}
}

func TestGuardedFailsWhenTheRequiredUpstreamIsDead(t *testing.T) {
	forEachEcho(t, testGuardedFailsWhenRequiredIsDead)
}

func testGuardedFailsWhenRequiredIsDead(t *testing.T, guarded func(gateway.Config) (http.Handler, func() error)) {
	verifyNoLeaks(t)
	srv, ups, _ := setup(t, guarded)
	defer http.DefaultClient.CloseIdleConnections()
	if err := ups[0].SetFault(upstream.Dead); err != nil {
		t.Fatal(err)
	}
	if status, _, body := call(t, srv.URL+gateway.FeedPath); status != http.StatusBadGateway {
		t.Errorf("status %d (%s), want 502", status, body)
	}
}

func TestGuardedReportsTheLeakingLine(t *testing.T) {
	forEachEcho(t, testGuardedReportsTheLeakingLine)
}

func testGuardedReportsTheLeakingLine(t *testing.T, guarded func(gateway.Config) (http.Handler, func() error)) {
	verifyNoLeaks(t)
	srv, _, rec := setup(t, guarded)
	defer http.DefaultClient.CloseIdleConnections()
	if status, _, body := call(t, srv.URL+gateway.CountPath); status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	line := leakLine(t)
	for _, s := range rec.Ended() {
		if s.SpanKind() != trace.SpanKindClient {
			continue
		}
		for _, ev := range s.Events() {
			if ev.Name != vocab.EventBodyLeaked {
				continue
			}
			attrs := map[string]string{}
			for _, kv := range ev.Attributes {
				attrs[string(kv.Key)] = kv.Value.String()
			}
			if !strings.HasSuffix(attrs["code.file.path"], "internal/gateway/guarded.go") || attrs["code.line.number"] != strconv.Itoa(line) {
				t.Errorf("leak at %s:%s, want guarded.go:%d", attrs["code.file.path"], attrs["code.line.number"], line)
			}
			return
		}
	}
	t.Errorf("no %s event on a client span", vocab.EventBodyLeaked)
}

func TestNaiveLeakLeavesItsClientSpanOpen(t *testing.T) {
	srv, _, rec := setup(t, naive)
	defer http.DefaultClient.CloseIdleConnections()
	if status, _, body := call(t, srv.URL+gateway.CountPath); status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	started := 0
	for _, s := range rec.Started() {
		if s.SpanKind() == trace.SpanKindClient {
			started++
		}
	}
	for _, s := range rec.Ended() {
		if s.SpanKind() == trace.SpanKindClient {
			t.Errorf("client span %q ended; plain otelhttp cannot end a span whose body is never closed", s.Name())
		}
	}
	if started != 1 {
		t.Errorf("%d client spans started, want 1", started)
	}
}

func TestNaiveWaitsForABlackHoleUntilItComesBack(t *testing.T) {
	srv, ups, _ := setup(t, naive)
	defer http.DefaultClient.CloseIdleConnections()
	if err := ups[2].SetFault(upstream.BlackHole); err != nil {
		t.Fatal(err)
	}
	type answer struct {
		status int
		after  time.Duration
	}
	answered := make(chan answer, 1)
	start := time.Now()
	go func() {
		resp, err := http.Get(srv.URL + gateway.FeedPath)
		if err != nil {
			answered <- answer{}
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		answered <- answer{resp.StatusCode, time.Since(start)}
	}()
	const outage = 500 * time.Millisecond
	select {
	case a := <-answered:
		t.Fatalf("answered %d after %s while ads was black-holed; the original waits for every upstream", a.status, a.after)
	case <-time.After(outage):
	}
	if err := ups[2].SetFault(upstream.Healthy); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-answered:
		if a.status != http.StatusOK || a.after < outage {
			t.Errorf("answered %d after %s, want 200 after the outage (%s)", a.status, a.after, outage)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no answer 5s after ads came back")
	}
}

func TestNaiveFirstFixAnswersInTimeButItsCallLivesOn(t *testing.T) {
	srv, ups, rec := setup(t, firstFix)
	defer http.DefaultClient.CloseIdleConnections()
	if err := ups[2].SetFault(upstream.BlackHole); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	status, _, body := call(t, srv.URL+gateway.FeedPath)
	if took := time.Since(start); status != http.StatusInternalServerError || took > 2*time.Second {
		t.Errorf("status %d after %s (%s), want 500 after its 200ms timeout", status, took, body)
	}
	// The ads call is still waiting on the black hole: its connection is
	// open and its client span has not ended.
	time.Sleep(100 * time.Millisecond)
	if n := ups[2].OpenConns(); n != 1 {
		t.Errorf("%d connections open to ads after the answer, want 1 (the abandoned call)", n)
	}
	started := 0
	for _, s := range rec.Started() {
		if s.SpanKind() == trace.SpanKindClient {
			started++
		}
	}
	ads := strings.TrimPrefix(ups[2].URL(), "http://")
	for _, s := range rec.Ended() {
		if s.SpanKind() != trace.SpanKindClient {
			continue
		}
		for _, kv := range s.Attributes() {
			if kv.Key == "url.full" && strings.Contains(kv.Value.String(), ads) {
				t.Errorf("the client span of the abandoned ads call ended: %v", s.Attributes())
			}
		}
	}
	if started != 3 {
		t.Errorf("%d client spans started, want 3", started)
	}
}

// verifyNoLeaks checks, after every other cleanup of t, that t left no
// goroutine behind.
func verifyNoLeaks(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		http.DefaultClient.CloseIdleConnections()
		goleak.VerifyNone(t, before)
	})
}

func leakLine(t *testing.T) int {
	t.Helper()
	src, err := os.ReadFile("guarded.go")
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(string(src), "\n") {
		if strings.Contains(l, "// LEAK:") {
			return i + 1
		}
	}
	t.Fatal("no // LEAK: line in guarded.go")
	return 0
}

func TestStatsReportTheProcessCPUAndTheProbe(t *testing.T) {
	probe := gateway.StartProbe()
	defer probe.Close()
	srv := httptest.NewServer(gateway.NewNaive(gateway.Config{Upstreams: []gateway.Upstream{{Name: "articles", URL: "http://127.0.0.1:1"}}, Probe: probe}))
	defer srv.Close()
	defer http.DefaultClient.CloseIdleConnections()
	time.Sleep(5 * gateway.ProbeInterval)
	var st gateway.Stats
	_, _, body := call(t, srv.URL+gateway.StatsPath)
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	if st.CPU.Time <= 0 || st.CPU.RunQueueWait < 0 || st.CPU.ProbeDelayMax < 0 {
		t.Errorf("CPU %+v: want the CPU time used so far, and no negative figure", st.CPU)
	}
}

// guardedOn is the guarded gateway on one Echo major.
func guardedOn(major string) func(gateway.Config) (http.Handler, func() error) {
	return func(cfg gateway.Config) (http.Handler, func() error) {
		cfg.Echo = major
		return gateway.NewGuarded(cfg, slog.New(slog.DiscardHandler))
	}
}

// forEachEcho runs f as a subtest on each Echo major the guarded gateway
// runs on.
func forEachEcho(t *testing.T, f func(t *testing.T, mk func(gateway.Config) (http.Handler, func() error))) {
	for _, major := range gateway.EchoMajors {
		t.Run("echo "+major, func(t *testing.T) { f(t, guardedOn(major)) })
	}
}

// Each client span names the upstream it called, as the span name and as
// peer.service, and sits under the request's server span.
func TestGuardedClientSpansNameTheirUpstream(t *testing.T) {
	forEachEcho(t, func(t *testing.T, mk func(gateway.Config) (http.Handler, func() error)) {
		verifyNoLeaks(t)
		srv, _, rec := setup(t, mk)
		defer http.DefaultClient.CloseIdleConnections()
		if status, _, body := call(t, srv.URL+gateway.FeedPath); status != http.StatusOK {
			t.Fatalf("status %d: %s", status, body)
		}
		var server sdktrace.ReadOnlySpan
		clients := map[string]sdktrace.ReadOnlySpan{}
		for _, s := range rec.Ended() {
			switch s.SpanKind() {
			case trace.SpanKindServer:
				server = s
			case trace.SpanKindClient:
				clients[s.Name()] = s
			}
		}
		if server == nil || server.Name() != "GET "+gateway.FeedPath {
			t.Fatalf("no server span GET %s", gateway.FeedPath)
		}
		for _, name := range gateway.UpstreamNames {
			s, ok := clients["GET "+name]
			if !ok {
				t.Errorf("no client span GET %s among %d", name, len(clients))
				continue
			}
			peer := ""
			for _, kv := range s.Attributes() {
				if kv.Key == vocab.AttrPeerService {
					peer = kv.Value.AsString()
				}
			}
			if peer != name || s.Parent().SpanID() != server.SpanContext().SpanID() {
				t.Errorf("GET %s: peer.service %q, parent %s; want %q under the server span %s", name, peer, s.Parent().SpanID(), name, server.SpanContext().SpanID())
			}
		}
	})
}

// Every call tells its upstream how long the gateway will wait: a
// Connect-Timeout-Ms within the request's deadline.
func TestGuardedPropagatesItsDeadline(t *testing.T) {
	forEachEcho(t, func(t *testing.T, mk func(gateway.Config) (http.Handler, func() error)) {
		verifyNoLeaks(t)
		got := make(chan string, 3)
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got <- r.Header.Get("Connect-Timeout-Ms")
			_, _ = w.Write([]byte(`{"items":[]}`))
		}))
		defer up.Close()
		var ups []gateway.Upstream
		for i, name := range gateway.UpstreamNames {
			ups = append(ups, gateway.Upstream{Name: name, URL: up.URL, Optional: i > 0})
		}
		h, closeFn := mk(gateway.Config{Upstreams: ups})
		defer func() { _ = closeFn() }()
		srv := httptest.NewServer(h)
		defer srv.Close()
		defer http.DefaultClient.CloseIdleConnections()
		if status, _, body := call(t, srv.URL+gateway.FeedPath); status != http.StatusOK {
			t.Fatalf("status %d: %s", status, body)
		}
		for range gateway.UpstreamNames {
			v := <-got
			ms, err := strconv.Atoi(v)
			if err != nil || ms <= 0 || time.Duration(ms)*time.Millisecond > gateway.GuardedDeadline {
				t.Errorf("Connect-Timeout-Ms %q, want at most %s", v, gateway.GuardedDeadline)
			}
		}
	})
}

// The inspector shows one transport per upstream, by name.
func TestGuardedInspectorListsATransportPerUpstream(t *testing.T) {
	forEachEcho(t, func(t *testing.T, mk func(gateway.Config) (http.Handler, func() error)) {
		verifyNoLeaks(t)
		srv, _, _ := setup(t, mk)
		defer http.DefaultClient.CloseIdleConnections()
		status, _, body := call(t, srv.URL+gateway.InspectorPath+"?format=json")
		var in struct {
			Transports []struct {
				Name string `json:"name"`
			} `json:"transports"`
		}
		if err := json.Unmarshal(body, &in); err != nil || status != http.StatusOK {
			t.Fatalf("inspector: %d %v: %.300s", status, err, body)
		}
		var names []string
		for _, tr := range in.Transports {
			names = append(names, tr.Name)
		}
		if strings.Join(names, ",") != strings.Join(gateway.UpstreamNames, ",") {
			t.Errorf("inspector lists transports %v, want %v", names, gateway.UpstreamNames)
		}
	})
}
