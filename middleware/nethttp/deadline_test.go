package nethttp_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/middleware/nethttp"
	"github.com/telltale-go/telltale/vocab"
)

// A handler whose upstream black-holes gives up when its deadline cancels
// the call, and returns without writing: Deadline answers the 504 itself,
// as JSON, and the span says the deadline did it; the call's client span,
// a child of the server span, says why it failed.
func TestDeadlineAnswers504WhenHandlerGivesUp(t *testing.T) {
	v := newEnv(t)
	upstream := blackHole(t)
	const timeout = 200 * time.Millisecond
	v.mux.HandleFunc("GET /feed", func(w http.ResponseWriter, r *http.Request) {
		req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, upstream.URL+"/slow", nil)
		if err != nil {
			t.Error(err)
			return
		}
		resp, err := v.client.Do(req)
		if err != nil {
			return // gives up, as a net/http handler does
		}
		defer resp.Body.Close()
		w.WriteHeader(http.StatusOK)
	})
	v.start(t, v.trace()(nethttp.Deadline(timeout)(nethttp.Leaks()(v.mux))))

	start := time.Now()
	got := v.do(t, http.MethodGet, "/feed", nil)
	if elapsed := time.Since(start); elapsed < timeout {
		t.Errorf("answered after %s, before the deadline of %s", elapsed, timeout)
	}
	if got.code != http.StatusGatewayTimeout {
		t.Fatalf("status = %d %q, want 504", got.code, got.body)
	}
	if ct := got.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if want := `{"message":"request deadline of 200ms exceeded","timeout_ms":200}`; got.body != want {
		t.Errorf("body = %s, want %s", got.body, want)
	}

	s := v.serverSpan(t, "GET /feed")
	if code := mustAttr(t, s, "http.response.status_code").AsInt64(); code != http.StatusGatewayTimeout {
		t.Errorf("span status code %d", code)
	}
	if s.Status().Code != codes.Error {
		t.Errorf("span status %v, want Error", s.Status())
	}
	if !mustAttr(t, s, vocab.AttrDeadlineExceeded).AsBool() {
		t.Error("server span not marked telltale.deadline.exceeded")
	}
	if src := mustAttr(t, s, vocab.AttrDeadlineSource).AsString(); src != "default" {
		t.Errorf("source = %q", src)
	}
	// As on Echo, where the handler's error says it: the span says why.
	if got := mustAttr(t, s, "error.type").AsString(); got != vocab.ErrorDeadlineExceeded {
		t.Errorf("server span error.type = %q, want %s", got, vocab.ErrorDeadlineExceeded)
	}
	if d := s.Status().Description; !strings.HasPrefix(d, "request deadline of 200ms exceeded") {
		t.Errorf("server span status description %q, want the sentence", d)
	}
	client := v.clientSpan(t)
	if got := mustAttr(t, client, "error.type").AsString(); got != vocab.ErrorDeadlineExceeded {
		t.Errorf("client span error.type = %q", got)
	}
	if client.Parent().SpanID() != s.SpanContext().SpanID() {
		t.Error("client span is not a child of the server span")
	}
}

// A handler that returns without writing before its deadline leaves the
// answer to net/http (200, empty): only a deadline that passed makes a
// 504.
func TestDeadlineLeavesAnEarlyEmptyAnswerToNetHTTP(t *testing.T) {
	v := newEnv(t)
	v.mux.HandleFunc("GET /empty", func(http.ResponseWriter, *http.Request) {})
	v.start(t, v.stack(v.mux))
	if got := v.do(t, http.MethodGet, "/empty", nil); got.code != http.StatusOK || got.body != "" {
		t.Errorf("got %d %q, want net/http's empty 200", got.code, got.body)
	}
	s := v.serverSpan(t, "GET /empty")
	if _, ok := attr(s, vocab.AttrDeadlineExceeded); ok {
		t.Error("marked telltale.deadline.exceeded")
	}
}

// A client that goes away is not the server's failure: 499, no error on the
// span, no deadline mark.
func TestDeadlineClientGoneIs499NotError(t *testing.T) {
	v := newEnv(t)
	entered := make(chan struct{})
	v.mux.HandleFunc("GET /wait", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done() // the client goes away well before the 5s deadline
	})
	v.start(t, v.trace()(nethttp.Deadline(5*time.Second)(nethttp.Leaks()(v.mux))))

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, v.srv.URL+"/wait", nil)
	errc := make(chan error, 1)
	go func() {
		resp, err := v.srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-entered
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("client error = %v", err)
	}
	s := v.serverSpan(t, "GET /wait")
	if got := mustAttr(t, s, "http.response.status_code").AsInt64(); got != nethttp.StatusClientClosedRequest {
		t.Errorf("status = %d, want 499", got)
	}
	if s.Status().Code == codes.Error {
		t.Errorf("span status %v: a client going away is not a server error", s.Status())
	}
	if !mustAttr(t, s, vocab.AttrClientGone).AsBool() {
		t.Error("no telltale.client_gone")
	}
	if _, ok := attr(s, vocab.AttrDeadlineExceeded); ok {
		t.Error("client gone marked as deadline")
	}
}

// A handler that wrote before its deadline, then gives up because of it,
// keeps its answer: nothing is written over it.
func TestDeadlineKeepsAnAnswerWrittenBeforeIt(t *testing.T) {
	v := newEnv(t)
	v.mux.HandleFunc("GET /partial", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "partial answer")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	v.start(t, v.trace()(nethttp.Deadline(50*time.Millisecond)(nethttp.Leaks()(v.mux))))

	if got := v.do(t, http.MethodGet, "/partial", nil); got.code != http.StatusOK || got.body != "partial answer" {
		t.Fatalf("got %d %q, want the written 200 unchanged", got.code, got.body)
	}
	s := v.serverSpan(t, "GET /partial")
	if got := mustAttr(t, s, "http.response.status_code").AsInt64(); got != http.StatusOK {
		t.Errorf("span status code = %d", got)
	}
	if _, ok := attr(s, vocab.AttrDeadlineExceeded); ok {
		t.Error("a written response was marked as answered by the deadline")
	}
}

// Behind Deadline, and the whole stack, a handler still has the writer's
// interfaces: it streams with http.Flusher (and http.ResponseController),
// and takes the connection over with http.Hijacker — and a connection
// taken over is an answer, which the deadline leaves alone.
func TestDeadlineKeepsTheWritersInterfaces(t *testing.T) {
	v := newEnv(t)
	firstRead := make(chan struct{})
	v.mux.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(io.ReaderFrom); !ok {
			t.Error("the writer lost io.ReaderFrom")
		}
		_, _ = io.WriteString(w, "first\n")
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("ResponseController.Flush: %v", err)
		}
		select {
		case <-firstRead: // the client had the first line before the handler wrote the second
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "second\n")
		w.(http.Flusher).Flush()
	})
	v.mux.HandleFunc("GET /hijack", func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		defer conn.Close()
		<-r.Context().Done() // the deadline passes on a connection taken over
		_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
		_ = buf.Flush()
	})
	v.start(t, v.trace()(nethttp.Deadline(100*time.Millisecond)(nethttp.Leaks()(v.mux))))

	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, v.srv.URL+"/stream", nil)
	resp, err := v.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := bufio.NewReader(resp.Body)
	if first, err := lines.ReadString('\n'); first != "first\n" {
		t.Fatalf("first line %q, %v", first, err)
	}
	close(firstRead)
	if second, err := lines.ReadString('\n'); second != "second\n" {
		t.Fatalf("second line %q, %v", second, err)
	}

	if got := v.do(t, http.MethodGet, "/hijack", nil); got.code != http.StatusOK || got.body != "hijacked" {
		t.Fatalf("hijacked: got %d %q", got.code, got.body)
	}
	s := v.serverSpan(t, "GET /hijack")
	if _, ok := attr(s, vocab.AttrDeadlineExceeded); ok {
		t.Error("a hijacked connection was answered by the deadline")
	}
}

// A route's timeout applies when the route is known before the handler:
// from RouteFunc in front of the mux, from the request's pattern inside
// it; TimeoutFunc wins over both.
func TestDeadlineRoutesFromRouteFuncOrPattern(t *testing.T) {
	v := newEnv(t)
	budget := make(chan time.Duration, 1)
	probe := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, _ := r.Context().Deadline()
		budget <- time.Until(d)
		w.WriteHeader(http.StatusNoContent)
	})
	v.mux.Handle("GET /probe", probe)
	v.mux.Handle("GET /slow/{id}", probe)
	v.mux.Handle("GET /inside", nethttp.DeadlineWithConfig(nethttp.DeadlineConfig{
		Timeout: time.Second,
		Routes:  map[string]time.Duration{"GET /inside": 4 * time.Second},
	})(probe))
	front := nethttp.DeadlineWithConfig(nethttp.DeadlineConfig{
		Timeout:   time.Second,
		Routes:    map[string]time.Duration{"GET /slow/{id}": 3 * time.Second},
		RouteFunc: func(r *http.Request) string { _, p := v.mux.Handler(r); return p },
		TimeoutFunc: func(r *http.Request) time.Duration {
			if r.URL.Query().Get("budget") == "tiny" {
				return 50 * time.Millisecond
			}
			return 0
		},
	})
	v.start(t, front(v.mux))

	for _, c := range []struct {
		path string
		want time.Duration
	}{
		{"/probe", time.Second},
		{"/slow/1", 3 * time.Second},
		{"/slow/1?budget=tiny", 50 * time.Millisecond},
		{"/inside", time.Second}, // the inner Deadline's 4s is later than the outer's: the earlier stays
	} {
		v.do(t, http.MethodGet, c.path, nil)
		if got := <-budget; got > c.want || got < c.want-500*time.Millisecond {
			t.Errorf("%s: budget %s, want about %s", c.path, got, c.want)
		}
	}

	// Alone, inside the mux, Deadline reads the route from the pattern.
	inner := newEnv(t)
	inner.mux.Handle("GET /inside", nethttp.DeadlineWithConfig(nethttp.DeadlineConfig{
		Timeout: time.Second,
		Routes:  map[string]time.Duration{"GET /inside": 4 * time.Second},
	})(probe))
	inner.start(t, inner.mux)
	inner.do(t, http.MethodGet, "/inside", nil)
	if got := <-budget; got > 4*time.Second || got < 3500*time.Millisecond {
		t.Errorf("inside the mux: budget %s, want about 4s", got)
	}
}

// A handler that panics has its context ended all the same, as net/http
// ends a request's, for the goroutines it left behind.
func TestDeadlineEndsThePanickingHandlersContext(t *testing.T) {
	v := newEnv(t)
	handed := make(chan context.Context, 1)
	v.mux.HandleFunc("GET /panic", func(w http.ResponseWriter, r *http.Request) {
		handed <- r.Context()
		panic("boom")
	})
	v.start(t, recoverer(v.stack(v.mux)))
	if got := v.do(t, http.MethodGet, "/panic", nil); got.code != http.StatusInternalServerError {
		t.Fatalf("status %d", got.code)
	}
	ctx := <-handed
	select {
	case <-ctx.Done():
	case <-time.After(requestTimeout):
		t.Fatal("the panicking handler's context is not done")
	}
	s := v.waitSpan(t, func(s sdktrace.ReadOnlySpan) bool { return s.SpanKind() == trace.SpanKindServer }, "server span")
	if got := mustAttr(t, s, "http.route").AsString(); got != "/panic" {
		t.Errorf("http.route = %q: the panicking request's route is still noted", got)
	}
}

func TestDeadlineConfigValidation(t *testing.T) {
	bad := map[string]nethttp.DeadlineConfig{
		"no timeout":         {},
		"negative max":       {Timeout: time.Second, MaxTimeout: -1},
		"timeout over max":   {Timeout: 2 * time.Second, MaxTimeout: time.Second},
		"route not positive": {Timeout: time.Second, Routes: map[string]time.Duration{"GET /x": 0}},
		"route over max":     {Timeout: time.Second, MaxTimeout: time.Second, Routes: map[string]time.Duration{"GET /x": time.Minute}},
		"bad status":         {Timeout: time.Second, StatusCode: 42},
	}
	for name, cfg := range bad {
		if _, err := cfg.ToMiddleware(); err == nil || !strings.HasPrefix(err.Error(), "nethttp: Deadline: ") {
			t.Errorf("%s: err = %v, want an error prefixed \"nethttp: Deadline: \"", name, err)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("Deadline did not panic on an invalid config")
		}
	}()
	nethttp.Deadline(0)
}
