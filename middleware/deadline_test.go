package middleware_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/internal/timeoutheader"
	ttmw "github.com/telltale-go/telltale/middleware"
	"github.com/telltale-go/telltale/transport"
	"github.com/telltale-go/telltale/vocab"
)

// The incident's step 4: an upstream that never answers must not hold the
// request. The handler passes its request context to the outbound call, the
// deadline cancels it, and the client gets a 504 with a JSON error within the
// deadline plus a small margin.
func TestDeadlineAnswers504WhileUpstreamBlackHoles(t *testing.T) {
	v := newEnv(t)
	upstream := blackHole(t)
	const timeout = 200 * time.Millisecond
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp}))
	v.e.Use(ttmw.Deadline(timeout))
	v.e.GET("/feed", func(c echo.Context) error {
		req, err := http.NewRequestWithContext(c.Request().Context(), http.MethodGet, upstream.URL+"/slow", nil)
		if err != nil {
			return err
		}
		resp, err := v.client.Do(req)
		if err != nil {
			return echo.NewHTTPError(http.StatusBadGateway, "upstream failed").WithInternal(err)
		}
		defer resp.Body.Close()
		return c.NoContent(http.StatusOK)
	})
	v.start(t)

	start := time.Now()
	code, body := v.do(t, http.MethodGet, "/feed", nil)
	elapsed := time.Since(start)
	if code != http.StatusGatewayTimeout {
		t.Fatalf("status = %d %q, want 504", code, body)
	}
	if elapsed < timeout || elapsed > timeout+250*time.Millisecond {
		t.Errorf("answered after %s, want within [%s, %s]", elapsed, timeout, timeout+250*time.Millisecond)
	}
	var msg struct {
		Message   string `json:"message"`
		TimeoutMS int64  `json:"timeout_ms"`
	}
	if err := json.Unmarshal([]byte(body), &msg); err != nil {
		t.Fatalf("body %q is not JSON: %v", body, err)
	}
	if msg.TimeoutMS != 200 || !strings.Contains(msg.Message, "deadline of 200ms exceeded") {
		t.Errorf("body = %+v", msg)
	}

	s := v.serverSpan(t, "GET /feed")
	if !mustAttr(t, s, vocab.AttrDeadlineExceeded).AsBool() {
		t.Error("server span not marked telltale.deadline.exceeded")
	}
	if got := mustAttr(t, s, "error.type").AsString(); got != vocab.ErrorDeadlineExceeded {
		t.Errorf("error.type = %q, want deadline_exceeded", got)
	}
	if got := mustAttr(t, s, vocab.AttrDeadlineSource).AsString(); got != "default" {
		t.Errorf("source = %q", got)
	}
	client := v.waitSpan(t, func(s sdktrace.ReadOnlySpan) bool { return s.SpanKind().String() == "client" }, "client span")
	if got := mustAttr(t, client, "error.type").AsString(); got != vocab.ErrorDeadlineExceeded {
		t.Errorf("client span error.type = %q", got)
	}
	if client.Parent().SpanID() != s.SpanContext().SpanID() {
		t.Error("client span is not a child of the server span")
	}
}

// deadlineProbe serves /probe and reports the budget the handler saw.
func deadlineProbe(t *testing.T, cfg ttmw.DeadlineConfig) (*env, func(h http.Header) (time.Duration, bool), chan time.Duration) {
	t.Helper()
	v := newEnv(t)
	budget := make(chan time.Duration, 1)
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp}))
	v.e.Use(ttmw.DeadlineWithConfig(cfg))
	probe := func(c echo.Context) error {
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
	return v, func(h http.Header) (time.Duration, bool) {
		t.Helper()
		v.do(t, http.MethodGet, "/probe", h)
		d := <-budget
		return d, d >= 0
	}, budget
}

// connect is a request header of the caller's budget, as Connect clients
// and telltale's transport send it; empty means none.
func connect(v string) http.Header {
	if v == "" {
		return nil
	}
	return http.Header{timeoutheader.Connect: {v}}
}

// near reports whether got is d, give or take what the request itself took.
func near(got, d time.Duration) bool { return got <= d && got > d-100*time.Millisecond }

// The caller's budget, in Connect-Timeout-Ms, is honoured only when
// trusted, clamped to MaxTimeout; malformed values, negative ones included,
// are ignored and recorded.
func TestDeadlineTimeoutHeader(t *testing.T) {
	cases := []struct {
		name, header string
		trust        bool
		want         time.Duration
		clamped      bool
		invalid      bool
	}{
		{"no header", "", true, 2 * time.Second, false, false},
		{"shorter", "300", true, 300 * time.Millisecond, false, false},
		{"longer, up to max", "4000", true, 4 * time.Second, false, false},
		{"clamped", "600000", true, 5 * time.Second, true, false},
		{"max digits", "9999999999", true, 5 * time.Second, true, false},
		{"not trusted", "300", false, 2 * time.Second, false, false},
		{"negative", "-300", true, 2 * time.Second, false, true},
		{"unit", "300ms", true, 2 * time.Second, false, true},
		{"fraction", "1.5", true, 2 * time.Second, false, true},
		{"inner space", "3 00", true, 2 * time.Second, false, true},
		{"too long", "00000000001", true, 2 * time.Second, false, true},
		{"garbage", "<script>", true, 2 * time.Second, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, probe, _ := deadlineProbe(t, ttmw.DeadlineConfig{Timeout: 2 * time.Second, MaxTimeout: 5 * time.Second, TrustHeader: tc.trust})
			got, ok := probe(connect(tc.header))
			if !ok || !near(got, tc.want) {
				t.Errorf("budget = %s (deadline %v), want about %s", got, ok, tc.want)
			}
			s := v.serverSpan(t, "GET /probe")
			if c, _ := attr(s, vocab.AttrDeadlineClamped); c.AsBool() != tc.clamped {
				t.Errorf("clamped = %v, want %v", c.AsBool(), tc.clamped)
			}
			var invalid []string
			for _, ev := range s.Events() {
				if ev.Name == vocab.EventTimeoutHeaderInvalid {
					why, _ := attrOf(ev.Attributes, vocab.AttrTimeoutHeaderError)
					invalid = append(invalid, why.AsString())
				}
			}
			if (len(invalid) == 1) != tc.invalid {
				t.Errorf("invalid-header events %q, want one: %v", invalid, tc.invalid)
			}
			if tc.invalid && !strings.Contains(invalid[0], "malformed") {
				t.Errorf("event says %q", invalid[0])
			}
		})
	}
}

// Without MaxTimeout the header can shorten the configured timeout but not
// lengthen it; per-route timeouts and TimeoutFunc choose the local one.
func TestDeadlineRoutesFuncAndDefaultClamp(t *testing.T) {
	v, probe, budget := deadlineProbe(t, ttmw.DeadlineConfig{
		Timeout:     time.Second,
		Routes:      map[string]time.Duration{"/slow/:id": 3 * time.Second},
		TrustHeader: true,
		TimeoutFunc: func(c echo.Context) time.Duration {
			if c.QueryParam("budget") == "tiny" {
				return 50 * time.Millisecond
			}
			return 0
		},
	})
	if got, _ := probe(connect("30000")); !near(got, time.Second) {
		t.Errorf("header 30s without MaxTimeout: budget %s, want 1s", got)
	}
	if got, _ := probe(connect("400")); !near(got, 400*time.Millisecond) {
		t.Errorf("header 400ms: budget %s", got)
	}
	// The route's own timeout, and the func's.
	v.do(t, http.MethodGet, "/slow/1", nil)
	if got := <-budget; !near(got, 3*time.Second) {
		t.Errorf("route: budget %s", got)
	}
	v.do(t, http.MethodGet, "/probe?budget=tiny", nil)
	if got := <-budget; !near(got, 50*time.Millisecond) {
		t.Errorf("func: budget %s", got)
	}
	// A healthy request's span says nothing of its deadline, except that
	// the caller's was clamped.
	var got []string
	for _, s := range v.rec.Ended() {
		c, _ := attr(s, vocab.AttrDeadlineClamped)
		got = append(got, fmt.Sprintf("%s clamped=%v", s.Name(), c.AsBool()))
	}
	want := []string{
		"GET /probe clamped=true", // the header asked 30s: clamped to the configured 1s
		"GET /probe clamped=false",
		"GET /slow/:id clamped=false",
		"GET /probe clamped=false",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("deadlines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// When the deadline passes, the server span says what it was and where it
// came from: the default, the route's, the caller's header.
func TestDeadlineAttributesWhenItPasses(t *testing.T) {
	v := newEnv(t)
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp}))
	v.e.Use(ttmw.DeadlineWithConfig(ttmw.DeadlineConfig{Timeout: 40 * time.Millisecond, TrustHeader: true,
		Routes: map[string]time.Duration{"/route": 60 * time.Millisecond}}))
	wait := func(c echo.Context) error {
		<-c.Request().Context().Done()
		return c.Request().Context().Err()
	}
	v.e.GET("/default", wait)
	v.e.GET("/route", wait)
	v.start(t)
	for _, c := range []struct {
		path, header, source string
		timeout              int64
	}{{"/default", "", "default", 40}, {"/route", "", "route", 60}, {"/default", "20", "header", 20}} {
		if code, _ := v.do(t, http.MethodGet, c.path, connect(c.header)); code != http.StatusGatewayTimeout {
			t.Fatalf("%s: status %d", c.path, code)
		}
		s := v.rec.Ended()[len(v.rec.Ended())-1]
		if src := mustAttr(t, s, vocab.AttrDeadlineSource).AsString(); src != c.source || mustAttr(t, s, vocab.AttrDeadlineTimeout).AsInt64() != c.timeout ||
			!mustAttr(t, s, vocab.AttrDeadlineExceeded).AsBool() {
			t.Errorf("%s %s: source %q, attributes %v", c.path, c.header, src, s.Attributes())
		}
	}
}

// A handler that ignores its context runs to its end; the span says by how
// much it overran, and a handler that still answered keeps its answer.
func TestDeadlineRecordsOverrun(t *testing.T) {
	v := newEnv(t)
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp}))
	v.e.Use(ttmw.Deadline(50 * time.Millisecond))
	v.e.GET("/stubborn", func(c echo.Context) error {
		time.Sleep(150 * time.Millisecond) // ignores its context
		return c.String(http.StatusOK, "late but fine")
	})
	v.start(t)
	if code, body := v.do(t, http.MethodGet, "/stubborn", nil); code != http.StatusOK || body != "late but fine" {
		t.Fatalf("got %d %q", code, body)
	}
	s := v.serverSpan(t, "GET /stubborn")
	if got := mustAttr(t, s, vocab.AttrDeadlineOverrun).AsInt64(); got < 90 || got > 1000 {
		t.Errorf("overrun = %vms, want about 100ms", got)
	}
	if _, ok := attr(s, vocab.AttrDeadlineExceeded); ok {
		t.Error("a handler that answered was marked as answered by the deadline")
	}
}

// A client that goes away is not the server's failure: 499, no error on the
// span, no deadline mark.
func TestDeadlineClientGoneIs499NotError(t *testing.T) {
	v := newEnv(t)
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp}))
	v.e.Use(ttmw.Deadline(5 * time.Second))
	entered := make(chan struct{})
	v.e.GET("/wait", func(c echo.Context) error {
		close(entered)
		<-c.Request().Context().Done()
		return c.Request().Context().Err()
	})
	v.start(t)

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
	if got := mustAttr(t, s, "http.response.status_code").AsInt64(); got != ttmw.StatusClientClosedRequest {
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

// A handler that already answered, then fails because of the deadline, keeps
// its answer: nothing is written twice.
func TestDeadlineNeverWritesCommittedResponseTwice(t *testing.T) {
	v := newEnv(t)
	var sawCommitted atomic.Bool
	v.e.HTTPErrorHandler = func(err error, c echo.Context) {
		sawCommitted.Store(c.Response().Committed)
		v.e.DefaultHTTPErrorHandler(err, c)
	}
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp}))
	v.e.Use(ttmw.Deadline(50 * time.Millisecond))
	v.e.GET("/partial", func(c echo.Context) error {
		c.Response().Header().Set(echo.HeaderContentType, echo.MIMETextPlain)
		c.Response().WriteHeader(http.StatusOK)
		_, _ = c.Response().Write([]byte("partial answer"))
		c.Response().Flush()
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

// The context is a real deadline context: Done closes at the deadline, with
// DeadlineExceeded, children see it, and it ends with the request.
func TestDeadlineContextBehavesLikeTheStandardOne(t *testing.T) {
	v := newEnv(t)
	v.e.Use(ttmw.Deadline(80 * time.Millisecond))
	type seen struct {
		errBefore, childErr, errAfter error
		waited                        time.Duration
		hasDeadline                   bool
	}
	got := make(chan seen, 1)
	after := make(chan context.Context, 1)
	v.e.GET("/ctx", func(c echo.Context) error {
		ctx := c.Request().Context()
		var s seen
		_, s.hasDeadline = ctx.Deadline()
		s.errBefore = ctx.Err()
		child, cancel := context.WithCancel(ctx)
		defer cancel()
		start := time.Now()
		<-child.Done()
		s.waited = time.Since(start)
		s.childErr = child.Err()
		s.errAfter = ctx.Err()
		got <- s
		after <- ctx
		return c.NoContent(http.StatusNoContent)
	})
	v.e.GET("/quick", func(c echo.Context) error {
		after <- c.Request().Context()
		return c.NoContent(http.StatusNoContent)
	})
	v.start(t)

	v.do(t, http.MethodGet, "/ctx", nil)
	s := <-got
	<-after
	if !s.hasDeadline || s.errBefore != nil {
		t.Errorf("before the deadline: deadline %v, err %v", s.hasDeadline, s.errBefore)
	}
	if s.waited < 60*time.Millisecond || s.waited > 500*time.Millisecond {
		t.Errorf("child done after %s, want about 80ms", s.waited)
	}
	if !errors.Is(s.childErr, context.DeadlineExceeded) || !errors.Is(s.errAfter, context.DeadlineExceeded) {
		t.Errorf("errors %v, %v, want DeadlineExceeded", s.childErr, s.errAfter)
	}

	// A context nobody waited on is still done once the request is over,
	// for the goroutines the handler left behind.
	v.do(t, http.MethodGet, "/quick", nil)
	ctx := <-after
	select {
	case <-ctx.Done():
	case <-time.After(time.Second):
		t.Fatal("request context not done after the request")
	}
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Errorf("after the request: %v, want Canceled", ctx.Err())
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
	}
	for name, cfg := range bad {
		if _, err := cfg.ToMiddleware(); err == nil || !strings.HasPrefix(err.Error(), "middleware: ") {
			t.Errorf("%s: err = %v, want an error prefixed \"middleware: \"", name, err)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("DeadlineWithConfig did not panic on an invalid config")
		}
	}()
	ttmw.Deadline(0)
}

// Envoy's X-Envoy-Expected-Rq-Timeout-Ms, when trusted, only ever shortens
// the deadline; with the caller's Connect-Timeout-Ms too, the smallest wins;
// a malformed one is ignored and recorded, naming the header.
func TestDeadlineEnvoyHeaderIsAnUpperBound(t *testing.T) {
	both := func(c, e string) http.Header {
		h := connect(c)
		if h == nil {
			h = http.Header{}
		}
		if e != "" {
			h.Set("X-Envoy-Expected-Rq-Timeout-Ms", e)
		}
		return h
	}
	cases := []struct {
		name            string
		header          http.Header
		trustEnvoy      bool
		want            time.Duration
		source, invalid string
	}{
		{"envoy shorter", both("", "800"), true, 800 * time.Millisecond, "envoy", ""},
		{"envoy longer", both("", "3000"), true, 2 * time.Second, "default", ""},
		{"envoy smaller than the caller", both("4000", "1000"), true, time.Second, "envoy", ""},
		{"caller smaller than envoy", both("500", "1000"), true, 500 * time.Millisecond, "header", ""},
		{"envoy not trusted", both("", "800"), false, 2 * time.Second, "default", ""},
		{"envoy malformed", both("", "8s"), true, 2 * time.Second, "default", "X-Envoy-Expected-Rq-Timeout-Ms"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, probe, _ := deadlineProbe(t, ttmw.DeadlineConfig{Timeout: 2 * time.Second, MaxTimeout: 5 * time.Second,
				TrustHeader: true, TrustEnvoyHeader: tc.trustEnvoy})
			if got, ok := probe(tc.header); !ok || !near(got, tc.want) {
				t.Errorf("budget = %s, want about %s", got, tc.want)
			}
			s := v.serverSpan(t, "GET /probe")
			if src, ok := attr(s, vocab.AttrDeadlineSource); ok && src.AsString() != tc.source {
				t.Errorf("source = %q, want %q", src.AsString(), tc.source)
			}
			var why string
			for _, ev := range s.Events() {
				if ev.Name == vocab.EventTimeoutHeaderInvalid {
					v, _ := attrOf(ev.Attributes, vocab.AttrTimeoutHeaderError)
					why = v.AsString()
				}
			}
			if tc.invalid != "" && !strings.Contains(why, tc.invalid) || tc.invalid == "" && why != "" {
				t.Errorf("invalid-header event %q, want one naming %q", why, tc.invalid)
			}
		})
	}
}

// Between two services, the caller's deadline travels: the front's
// transport sends what is left of its request's budget in
// Connect-Timeout-Ms, and the back's Deadline middleware, trusting it, stops
// when the front stops waiting.
func TestDeadlinePropagatesBetweenServices(t *testing.T) {
	back := newEnv(t)
	back.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: back.tp, Propagators: back.prop}))
	back.e.Use(ttmw.DeadlineWithConfig(ttmw.DeadlineConfig{Timeout: 10 * time.Second, TrustHeader: true}))
	budget := make(chan time.Duration, 1)
	back.e.GET("/work", func(c echo.Context) error {
		d, _ := c.Request().Context().Deadline()
		budget <- time.Until(d)
		return c.NoContent(http.StatusNoContent)
	})
	back.start(t)

	front := newEnv(t, transport.WithDeadlinePropagation())
	front.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: front.tp, Propagators: front.prop}))
	front.e.Use(ttmw.Deadline(time.Second))
	front.e.GET("/page", func(c echo.Context) error {
		time.Sleep(100 * time.Millisecond) // a part of the budget spent before the call
		req, _ := http.NewRequestWithContext(c.Request().Context(), http.MethodGet, back.srv.URL+"/work", nil)
		resp, err := front.client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		return c.NoContent(resp.StatusCode)
	})
	front.start(t)

	if code, _ := front.do(t, http.MethodGet, "/page", nil); code != http.StatusNoContent {
		t.Fatalf("status %d", code)
	}
	if got := <-budget; got > 900*time.Millisecond || got < 700*time.Millisecond {
		t.Errorf("the back's budget is %s, want what the front had left, about 900ms", got)
	}
}

// Once the request context's Err is non-nil it never changes, as the
// context contract says, even for a handler that only polls Err past its
// deadline and never waits on Done; context.Cause agrees with it.
func TestDeadlineErrIsSticky(t *testing.T) {
	v := newEnv(t)
	v.e.Use(ttmw.Deadline(20 * time.Millisecond))
	type seen struct {
		ctx        context.Context
		err, cause error
	}
	got := make(chan seen, 1)
	v.e.GET("/poll", func(c echo.Context) error {
		ctx := c.Request().Context()
		time.Sleep(40 * time.Millisecond) // past the deadline; only polls Err
		got <- seen{ctx, ctx.Err(), context.Cause(ctx)}
		return c.NoContent(http.StatusNoContent)
	})
	v.start(t)
	v.do(t, http.MethodGet, "/poll", nil)
	s := <-got
	if !errors.Is(s.err, context.DeadlineExceeded) {
		t.Fatalf("in the handler, past the deadline: Err %v", s.err)
	}
	if s.cause == nil {
		t.Errorf("context.Cause = nil while Err = %v", s.err)
	}
	time.Sleep(20 * time.Millisecond) // net/http cancels the request context
	if err := s.ctx.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("after the request Err = %v; it was DeadlineExceeded before", err)
	}
}

// When the deadline expires first and the client (whose own budget is a
// little longer) goes away while the handler finishes, the request is a
// 504: it failed because of its deadline.
func TestDeadlineThenClientGoneIsDeadline(t *testing.T) {
	v := newEnv(t)
	upstream := blackHole(t)
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp}))
	v.e.Use(ttmw.Deadline(50 * time.Millisecond))
	v.e.GET("/feed", func(c echo.Context) error {
		req, _ := http.NewRequestWithContext(c.Request().Context(), http.MethodGet, upstream.URL, nil)
		resp, err := v.client.Do(req) // fails at the deadline, 50ms
		if err == nil {
			resp.Body.Close()
			return c.NoContent(http.StatusOK)
		}
		time.Sleep(100 * time.Millisecond) // clean-up that ignores the context
		return echo.NewHTTPError(http.StatusBadGateway, "upstream failed").WithInternal(err)
	})
	v.start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, v.srv.URL+"/feed", nil)
	if resp, err := v.srv.Client().Do(req); err == nil {
		resp.Body.Close()
	}
	s := v.serverSpan(t, "GET /feed")
	if got := mustAttr(t, s, "http.response.status_code").AsInt64(); got != http.StatusGatewayTimeout {
		t.Errorf("status code %d, want 504: the deadline ran out before the client left", got)
	}
	if hit, _ := attr(s, vocab.AttrDeadlineExceeded); !hit.AsBool() {
		t.Error("not marked telltale.deadline.exceeded")
	}
}

// Without MaxTimeout, the caller's header can shorten the timeout
// TimeoutFunc chose, never lengthen it.
func TestHeaderCannotLengthenTimeoutFuncDeadline(t *testing.T) {
	_, probe, _ := deadlineProbe(t, ttmw.DeadlineConfig{
		Timeout:     time.Second,
		TrustHeader: true,
		TimeoutFunc: func(echo.Context) time.Duration { return 50 * time.Millisecond },
	})
	if got, _ := probe(connect("1000")); got > 50*time.Millisecond {
		t.Errorf("header 1000 with TimeoutFunc 50ms and no MaxTimeout: budget %s, want <= 50ms", got)
	}
}

// Echo's error handler runs with the request as it came into Deadline and
// Leaks: its context still live, for an error handler that looks at it or
// works with it, not the contexts they ended.
func TestErrorHandlerSeesALiveRequestContext(t *testing.T) {
	for _, withTrace := range []bool{true, false} {
		v := newEnv(t)
		var seen error = errors.New("error handler not called")
		v.e.HTTPErrorHandler = func(err error, c echo.Context) {
			seen = c.Request().Context().Err()
			v.e.DefaultHTTPErrorHandler(err, c)
		}
		if withTrace {
			v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp}))
		}
		v.e.Use(ttmw.Deadline(2 * time.Second))
		v.e.Use(ttmw.Leaks())
		v.e.GET("/fail", func(c echo.Context) error { return echo.NewHTTPError(http.StatusBadGateway, "upstream") })
		v.start(t)
		if code, _ := v.do(t, http.MethodGet, "/fail", nil); code != http.StatusBadGateway {
			t.Fatalf("status %d", code)
		}
		if seen != nil {
			t.Errorf("with Trace %v: the error handler saw the request context %v", withTrace, seen)
		}
	}
}

// A route that serves a stream — a proxied WebSocket, server-sent events,
// a large download — is exempted from the request deadline with the
// Skipper, the way the README says: its context has no deadline, the
// others' do.
func TestDeadlineSkipperExemptsLongLivedRoutes(t *testing.T) {
	v := newEnv(t)
	v.e.Use(ttmw.DeadlineWithConfig(ttmw.DeadlineConfig{
		Timeout: 2 * time.Second,
		Skipper: func(c echo.Context) bool { return c.Path() == "/events" },
	}))
	has := make(chan bool, 1)
	probe := func(c echo.Context) error {
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

// A deadline that passed before the client went away, with nothing waiting
// on the context in between — the handler ignores it — is still the
// deadline: a 504, telltale.deadline.exceeded, and DeadlineExceeded in the
// handler, as context.WithDeadline would say.
func TestDeadlineThenClientGoneWithoutLookingIsDeadline(t *testing.T) {
	v := newEnv(t)
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp}))
	v.e.Use(ttmw.Deadline(50 * time.Millisecond))
	errs := make(chan error, 1)
	v.e.GET("/stubborn", func(c echo.Context) error {
		time.Sleep(250 * time.Millisecond) // ignores its context; the client left at 150 ms
		err := c.Request().Context().Err()
		errs <- err
		return fmt.Errorf("too late: %w", err)
	})
	v.start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, v.srv.URL+"/stubborn", nil)
	if resp, err := v.srv.Client().Do(req); err == nil {
		resp.Body.Close()
	}
	if err := <-errs; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("in the handler, ctx.Err() = %v, want DeadlineExceeded", err)
	}
	s := v.serverSpan(t, "GET /stubborn")
	if got := mustAttr(t, s, "http.response.status_code").AsInt64(); got != http.StatusGatewayTimeout {
		t.Errorf("status %d, want 504", got)
	}
	if hit, _ := attr(s, vocab.AttrDeadlineExceeded); !hit.AsBool() {
		t.Error("not marked telltale.deadline.exceeded")
	}
	if _, gone := attr(s, vocab.AttrClientGone); gone {
		t.Error("marked telltale.client_gone: the deadline came first")
	}
}

// A handler that honours its context and returns a moment after the
// deadline did not overrun it: the 504's span has no overrun; one that
// keeps working well past the grace did.
func TestOverrunMeansTheHandlerIgnoredItsDeadline(t *testing.T) {
	v := newEnv(t)
	hole := blackHole(t)
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp}))
	v.e.Use(ttmw.Deadline(50 * time.Millisecond))
	v.e.GET("/prompt", func(c echo.Context) error {
		resp, err := v.client.Do(mustRequest(t, c, hole.URL))
		if err == nil {
			resp.Body.Close()
		}
		return err
	})
	v.e.GET("/stubborn", func(c echo.Context) error {
		time.Sleep(50*time.Millisecond + ttmw.DefaultOverrunGrace + 100*time.Millisecond)
		return errors.New("done, far too late")
	})
	v.start(t)
	for path, overran := range map[string]bool{"/prompt": false, "/stubborn": true} {
		if code, _ := v.do(t, http.MethodGet, path, nil); code != http.StatusGatewayTimeout {
			t.Fatalf("%s: status %d", path, code)
		}
		s := v.serverSpan(t, "GET "+path)
		o, ok := attr(s, vocab.AttrDeadlineOverrun)
		if ok != overran || ok && o.AsInt64() <= ttmw.DefaultOverrunGrace.Milliseconds() {
			t.Errorf("%s: overrun %v (%v), want it %v", path, o.Emit(), ok, overran)
		}
	}
}

// A caller that goes away at the deadline it propagated gave up waiting:
// an anomaly, exported in its trace though the head sampler dropped it.
// One that goes away well before canceled on purpose (a hedged request,
// an errgroup's first error): counted, not exported, no anomaly.
func TestCallerGaveUpOrCanceled(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	v := newUnsampledEnv(t)
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp, Propagators: v.prop}))
	v.e.Use(ttmw.DeadlineWithConfig(ttmw.DeadlineConfig{Timeout: 5 * time.Second, TrustHeader: true, MeterProvider: mp}))
	seen := make(seenIDs, 2)
	v.e.GET("/wait", func(c echo.Context) error {
		seen.note(c)
		<-c.Request().Context().Done()
		return c.Request().Context().Err()
	})
	v.start(t)
	call := func(header string, after time.Duration) trace.TraceID {
		ctx, cancel := context.WithTimeout(context.Background(), after)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, v.srv.URL+"/wait", nil)
		req.Header.Set("Connect-Timeout-Ms", header)
		if resp, err := v.srv.Client().Do(req); err == nil {
			resp.Body.Close()
		}
		return (<-seen).TraceID()
	}
	// The caller gives up at its deadline, which it propagated; it arrives
	// a moment before this request's own runs out, within the tolerance.
	gaveUp := call("100", 95*time.Millisecond)
	server := v.exported(t, gaveUp, 1)[0]
	if gone, _ := attr(server, vocab.AttrCallerGaveUp); !gone.AsBool() || mustAttr(t, server, vocab.AttrAnomaly).AsBool() != true {
		t.Errorf("the caller that gave up at its deadline: attributes %v", server.Attributes())
	}

	canceled := call("2000", 30*time.Millisecond) // well before the deadline it announced
	time.Sleep(100 * time.Millisecond)
	for _, s := range v.rec.Ended() {
		if s.SpanContext().TraceID() == canceled {
			t.Errorf("a deliberate cancellation was exported: %s %v", s.Name(), s.Attributes())
		}
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	counted := int64(0)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == vocab.MetricClientCanceled {
				for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
					counted += dp.Value
				}
			}
		}
	}
	if counted != 1 {
		t.Errorf("%s = %d, want 1: the deliberate cancellation, not the caller that gave up", vocab.MetricClientCanceled, counted)
	}
}

// Nothing writes to a request once the handler has seen it: a goroutine the
// handler started may read it (an audit log, detached work) while the
// middleware puts things back, and the race detector says nothing.
func TestNoWriteToTheRequestAfterTheHandler(t *testing.T) {
	v := newEnv(t)
	v.stack(time.Second, nil)
	done := make(chan struct{})
	v.e.GET("/audit/:id", func(c echo.Context) error {
		req := c.Request()
		go func() {
			defer close(done)
			for range 200 {
				_ = req.URL.Path
				_ = req.Context().Err()
				_ = req.Header.Get("User-Agent")
				_ = req.MultipartForm
				runtime.Gosched()
			}
		}()
		return c.NoContent(http.StatusOK)
	})
	v.start(t)
	v.do(t, http.MethodGet, "/audit/1", nil)
	<-done
}
