package echov5_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v5"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/telltale-go/telltale/internal/timeoutheader"
	ttmw "github.com/telltale-go/telltale/middleware/echov5"
	"github.com/telltale-go/telltale/vocab"
)

// An upstream that never answers must not hold the request. The handler
// passes its request context to the outbound call, the deadline cancels
// it, and Echo v5's own DefaultHTTPErrorHandler answers, once, a 504 whose
// JSON body says which deadline ran out, within the deadline plus a small
// margin. The server span records the deadline and the error, as a
// sentence; the client span, under it, the canceled call.
func TestDeadlineAnswers504WhileUpstreamBlackHoles(t *testing.T) {
	v := newEnv(t)
	handled := v.countErrorHandling()
	upstream := blackHole(t)
	const timeout = 2 * time.Second
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp}))
	v.e.Use(ttmw.Deadline(timeout))
	v.e.GET("/feed", func(c *echo.Context) error {
		req, err := http.NewRequestWithContext(c.Request().Context(), http.MethodGet, upstream.URL+"/slow", nil)
		if err != nil {
			return err
		}
		resp, err := v.client.Do(req)
		if err != nil {
			return echo.NewHTTPError(http.StatusBadGateway, "upstream failed").Wrap(err)
		}
		defer resp.Body.Close()
		return c.NoContent(http.StatusOK)
	})
	v.start(t)

	start := time.Now()
	resp := v.doResponse(t, http.MethodGet, "/feed", nil)
	body := readAll(t, resp)
	elapsed := time.Since(start)
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status = %d %q, want 504", resp.StatusCode, body)
	}
	if want := `{"message":"request deadline of 2s exceeded","timeout_ms":2000}`; strings.TrimSpace(body) != want {
		t.Errorf("body = %q, want %s", body, want)
	}
	if ct := resp.Header.Get(echo.HeaderContentType); !strings.HasPrefix(ct, echo.MIMEApplicationJSON) {
		t.Errorf("Content-Type = %q", ct)
	}
	if elapsed < timeout || elapsed > timeout+time.Second {
		t.Errorf("answered after %s, want within [%s, %s]", elapsed, timeout, timeout+time.Second)
	}

	s := v.serverSpan(t, "GET /feed")
	if got := mustAttr(t, s, "http.response.status_code").AsInt64(); got != http.StatusGatewayTimeout {
		t.Errorf("status attribute = %d", got)
	}
	if !mustAttr(t, s, vocab.AttrDeadlineExceeded).AsBool() || mustAttr(t, s, vocab.AttrDeadlineTimeout).AsInt64() != 2000 {
		t.Errorf("deadline attributes %v", s.Attributes())
	}
	if got := mustAttr(t, s, "error.type").AsString(); got != vocab.ErrorDeadlineExceeded {
		t.Errorf("error.type = %q, want deadline_exceeded", got)
	}
	if d := s.Status().Description; s.Status().Code != codes.Error || !strings.HasPrefix(d, "request deadline of 2s exceeded: upstream failed: Get ") {
		t.Errorf("status %v: want Error, the answer's message, then the handler's error", s.Status())
	}
	client := v.waitSpan(t, func(s sdktrace.ReadOnlySpan) bool { return s.SpanKind().String() == "client" }, "client span")
	if got := mustAttr(t, client, "error.type").AsString(); got != vocab.ErrorDeadlineExceeded {
		t.Errorf("client span error.type = %q", got)
	}
	if client.Parent().SpanID() != s.SpanContext().SpanID() {
		t.Error("client span is not a child of the server span")
	}
	if got := handled.Load(); got != 1 {
		t.Errorf("error handler ran %d times, want once", got)
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Without Trace, Echo answers the deadline's error itself: the same 504
// and body. The error is a sentence and wraps the handler's, so that
// errors.Is sees the context's error and echo.StatusCode the status.
func TestDeadlineErrorIsASentenceThatWrapsTheHandlers(t *testing.T) {
	e := echo.New()
	var got error
	answer := echo.DefaultHTTPErrorHandler(false)
	e.HTTPErrorHandler = func(c *echo.Context, err error) {
		got = err
		answer(c, err)
	}
	e.Use(ttmw.Deadline(20 * time.Millisecond))
	e.GET("/wait", func(c *echo.Context) error {
		<-c.Request().Context().Done()
		return echo.NewHTTPError(http.StatusBadGateway, "upstream failed").Wrap(c.Request().Context().Err())
	})
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/wait", nil))
	if want := `{"message":"request deadline of 20ms exceeded","timeout_ms":20}`; rec.Code != http.StatusGatewayTimeout || strings.TrimSpace(rec.Body.String()) != want {
		t.Errorf("answer %d %q, want 504 %s", rec.Code, rec.Body.String(), want)
	}
	if got == nil {
		t.Fatal("the error handler was not called")
	}
	if msg := got.Error(); msg != "request deadline of 20ms exceeded: upstream failed: context deadline exceeded" {
		t.Errorf("Error() = %q", msg)
	}
	var he *echo.HTTPError
	if !errors.Is(got, context.DeadlineExceeded) || !errors.As(got, &he) || he.Code != http.StatusBadGateway {
		t.Errorf("the error does not wrap the handler's: %v", got)
	}
	if echo.StatusCode(got) != http.StatusGatewayTimeout {
		t.Errorf("echo.StatusCode = %d", echo.StatusCode(got))
	}
}

// A client that goes away is not the server's failure: 499, no error on the
// span, no deadline mark.
func TestDeadlineClientGoneIs499NotError(t *testing.T) {
	v := newEnv(t)
	handled := v.countErrorHandling()
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp}))
	v.e.Use(ttmw.Deadline(5 * time.Second))
	entered := make(chan struct{})
	v.e.GET("/wait", func(c *echo.Context) error {
		close(entered)
		<-c.Request().Context().Done()
		return c.Request().Context().Err()
	})
	v.start(t)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, v.srv.URL+"/wait", nil)
	errc := make(chan error, 1)
	go func() {
		resp, err := v.srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("the handler was not called")
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("client error = %v", err)
	}
	s := v.serverSpan(t, "GET /wait")
	if got := mustAttr(t, s, "http.response.status_code").AsInt64(); got != ttmw.StatusClientClosedRequest {
		t.Errorf("status = %d, want 499", got)
	}
	if s.Status().Code == codes.Error {
		t.Errorf("span status %v: a client going away is not a server error", s.Status())
	}
	if _, ok := attr(s, "error.type"); ok {
		t.Error("a client going away got error.type")
	}
	if !mustAttr(t, s, vocab.AttrClientGone).AsBool() {
		t.Error("no telltale.client_gone")
	}
	if _, ok := attr(s, vocab.AttrDeadlineExceeded); ok {
		t.Error("client gone marked as deadline")
	}
	if got := handled.Load(); got != 1 {
		t.Errorf("error handler ran %d times, want once", got)
	}
}

// The 499's body, which nobody reads but a log may, is Echo's JSON error
// with the message alone.
func TestDeadlineClientGoneBody(t *testing.T) {
	e := echo.New()
	e.Use(ttmw.Deadline(5 * time.Second))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.GET("/wait", func(c *echo.Context) error {
		cancel() // the client goes away
		<-c.Request().Context().Done()
		return c.Request().Context().Err()
	})
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, "/wait", nil))
	if want := `{"message":"client closed request"}`; rec.Code != ttmw.StatusClientClosedRequest || strings.TrimSpace(rec.Body.String()) != want {
		t.Errorf("answer %d %q, want 499 %s", rec.Code, rec.Body.String(), want)
	}
}

// A 4xx the handler chose after its deadline passed is its own answer
// about the request, not the deadline's — an *echo.HTTPError or one of
// Echo v5's predefined errors alike.
func TestDeadlineKeepsTheHandlers4xx(t *testing.T) {
	e := echo.New()
	e.Use(ttmw.Deadline(10 * time.Millisecond))
	late := func(err error) echo.HandlerFunc {
		return func(c *echo.Context) error {
			<-c.Request().Context().Done()
			return err
		}
	}
	e.GET("/bad", late(echo.ErrBadRequest))
	e.GET("/missing", late(echo.NewHTTPError(http.StatusNotFound, "no such thing")))
	e.GET("/failed", late(echo.ErrBadGateway))
	for path, want := range map[string]int{"/bad": 400, "/missing": 404, "/failed": 504} {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != want {
			t.Errorf("%s: %d %q, want %d", path, rec.Code, rec.Body.String(), want)
		}
	}
}

// A handler that already answered, then fails because of the deadline, keeps
// its answer: nothing is written twice.
func TestDeadlineNeverWritesCommittedResponseTwice(t *testing.T) {
	v := newEnv(t)
	var sawCommitted atomic.Bool
	answer := echo.DefaultHTTPErrorHandler(false)
	v.e.HTTPErrorHandler = func(c *echo.Context, err error) {
		res, uerr := echo.UnwrapResponse(c.Response())
		sawCommitted.Store(uerr == nil && res.Committed)
		answer(c, err)
	}
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp}))
	v.e.Use(ttmw.Deadline(50 * time.Millisecond))
	v.e.GET("/partial", func(c *echo.Context) error {
		c.Response().Header().Set(echo.HeaderContentType, echo.MIMETextPlain)
		c.Response().WriteHeader(http.StatusOK)
		_, _ = c.Response().Write([]byte("partial answer"))
		_ = http.NewResponseController(c.Response()).Flush()
		<-c.Request().Context().Done()
		return c.Request().Context().Err()
	})
	v.start(t)

	code, body := v.do(t, http.MethodGet, "/partial", nil)
	if code != http.StatusOK || body != "partial answer" {
		t.Fatalf("got %d %q, want the committed 200 unchanged", code, body)
	}
	s := v.serverSpan(t, "GET /partial")
	if got := mustAttr(t, s, "http.response.status_code").AsInt64(); got != 200 {
		t.Errorf("span status code = %d", got)
	}
	if !sawCommitted.Load() {
		t.Error("the error handler did not see the response as committed")
	}
	if _, ok := attr(s, vocab.AttrDeadlineExceeded); ok {
		t.Error("a committed response was marked as answered by the deadline")
	}
}

// The timeout comes from the route's template (c.Path()), from TimeoutFunc,
// or from the caller's trusted header, which without MaxTimeout can shorten
// the configured timeout but not lengthen it.
func TestDeadlineRoutesFuncAndHeader(t *testing.T) {
	v := newEnv(t)
	v.e.Use(ttmw.DeadlineWithConfig(ttmw.DeadlineConfig{
		Timeout:     time.Second,
		Routes:      map[string]time.Duration{"/slow/:id": 3 * time.Second},
		TrustHeader: true,
		TimeoutFunc: func(c *echo.Context) time.Duration {
			if c.QueryParam("budget") == "tiny" {
				return 50 * time.Millisecond
			}
			return 0
		},
	}))
	budget := make(chan time.Duration, 1)
	probe := func(c *echo.Context) error {
		d, ok := c.Request().Context().Deadline()
		if !ok {
			budget <- -1
		} else {
			budget <- time.Until(d)
		}
		return c.NoContent(http.StatusNoContent)
	}
	v.e.GET("/probe", probe)
	v.e.GET("/slow/:id", probe)
	v.start(t)
	for _, tc := range []struct {
		path, header string
		want         time.Duration
	}{
		{"/probe", "", time.Second},
		{"/slow/1", "", 3 * time.Second},
		{"/probe?budget=tiny", "", 50 * time.Millisecond},
		{"/probe", "400", 400 * time.Millisecond},
		{"/probe", "30000", time.Second},
	} {
		var h http.Header
		if tc.header != "" {
			h = http.Header{timeoutheader.Connect: {tc.header}}
		}
		v.do(t, http.MethodGet, tc.path, h)
		if got := <-budget; got > tc.want || got < tc.want-500*time.Millisecond {
			t.Errorf("%s header %q: budget %s, want about %s", tc.path, tc.header, got, tc.want)
		}
	}
}

// Echo's error handler runs with the request as it came into Deadline and
// Leaks: its context still live, not the contexts they ended.
func TestErrorHandlerSeesALiveRequestContext(t *testing.T) {
	for _, withTrace := range []bool{true, false} {
		v := newEnv(t)
		seen := make(chan error, 1)
		answer := echo.DefaultHTTPErrorHandler(false)
		v.e.HTTPErrorHandler = func(c *echo.Context, err error) {
			seen <- c.Request().Context().Err()
			answer(c, err)
		}
		if withTrace {
			v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp}))
		}
		v.e.Use(ttmw.Deadline(2 * time.Second))
		v.e.Use(ttmw.Leaks())
		v.e.GET("/fail", func(c *echo.Context) error { return echo.NewHTTPError(http.StatusBadGateway, "upstream") })
		v.start(t)
		if code, _ := v.do(t, http.MethodGet, "/fail", nil); code != http.StatusBadGateway {
			t.Fatalf("status %d", code)
		}
		select {
		case err := <-seen: // sent before the answer was written
			if err != nil {
				t.Errorf("with Trace %v: the error handler saw the request context %v", withTrace, err)
			}
		default:
			t.Errorf("with Trace %v: the error handler was not called", withTrace)
		}
	}
}

// A route that serves a stream is exempted from the request deadline with
// the Skipper: its context has no deadline, the others' do.
func TestDeadlineSkipperExemptsLongLivedRoutes(t *testing.T) {
	v := newEnv(t)
	v.e.Use(ttmw.DeadlineWithConfig(ttmw.DeadlineConfig{
		Timeout: 2 * time.Second,
		Skipper: func(c *echo.Context) bool { return c.Path() == "/events" },
	}))
	has := make(chan bool, 1)
	probe := func(c *echo.Context) error {
		_, ok := c.Request().Context().Deadline()
		has <- ok
		return c.NoContent(http.StatusNoContent)
	}
	v.e.GET("/events", probe)
	v.e.GET("/users", probe)
	v.start(t)
	for path, want := range map[string]bool{"/events": false, "/users": true} {
		v.do(t, http.MethodGet, path, nil)
		if got := <-has; got != want {
			t.Errorf("%s: deadline %v, want %v", path, got, want)
		}
	}
}

func TestDeadlineConfigValidation(t *testing.T) {
	bad := map[string]ttmw.DeadlineConfig{
		"no timeout":         {},
		"negative max":       {Timeout: time.Second, MaxTimeout: -1},
		"timeout over max":   {Timeout: 2 * time.Second, MaxTimeout: time.Second},
		"route not positive": {Timeout: time.Second, Routes: map[string]time.Duration{"/x": 0}},
		"route over max":     {Timeout: time.Second, MaxTimeout: time.Second, Routes: map[string]time.Duration{"/x": time.Minute}},
		"bad status":         {Timeout: time.Second, StatusCode: 42},
		"negative grace":     {Timeout: time.Second, OverrunGrace: -1},
	}
	for name, cfg := range bad {
		if _, err := cfg.ToMiddleware(); err == nil || !strings.HasPrefix(err.Error(), "echov5: ") {
			t.Errorf("%s: err = %v, want an error prefixed \"echov5: \"", name, err)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("Deadline did not panic on an invalid config")
		}
	}()
	ttmw.Deadline(0)
}
