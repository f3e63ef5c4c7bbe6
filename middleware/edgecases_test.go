package middleware_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	echomw "github.com/labstack/echo/v4/middleware"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	ttmw "github.com/telltale-go/telltale/middleware"
	"github.com/telltale-go/telltale/vocab"
)

// spanText is everything a span carries as text: status, attributes, event
// attributes.
func spanText(s sdktrace.ReadOnlySpan) string {
	var b strings.Builder
	b.WriteString(s.Status().Description)
	for _, a := range s.Attributes() {
		b.WriteString("\n" + string(a.Key) + "=" + a.Value.String())
	}
	for _, ev := range s.Events() {
		for _, a := range ev.Attributes {
			b.WriteString("\n" + ev.Name + "." + string(a.Key) + "=" + a.Value.String())
		}
	}
	return b.String()
}

// Issue 5: query values are redacted everywhere telltale writes. Trace's
// RecordError writes the handler's error text, which for a failed
// http.Client call is a *url.Error naming the full URL, query included.
func TestTraceExceptionRedactsQueryValues(t *testing.T) {
	v := newEnv(t)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close() // connection refused
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp}))
	v.e.GET("/call", func(c echo.Context) error {
		req, _ := http.NewRequestWithContext(c.Request().Context(), http.MethodGet, deadURL+"/api?key=hunter2", nil)
		resp, err := v.client.Do(req)
		if err != nil {
			return echo.NewHTTPError(http.StatusBadGateway, "upstream failed").WithInternal(err)
		}
		resp.Body.Close()
		return c.NoContent(http.StatusOK)
	})
	v.start(t)
	if code, _ := v.do(t, http.MethodGet, "/call", nil); code != http.StatusBadGateway {
		t.Fatalf("status %d", code)
	}
	s := v.serverSpan(t, "GET /call")
	if txt := spanText(s); strings.Contains(txt, "hunter2") {
		t.Errorf("server span carries a query value:\n%s", txt)
	}
}

// The package doc recommends e.Use(middleware.Recover()) before Trace. A
// panicking handler is then answered 500 by Recover, but the server span
// ends during the unwinding without status code or error.
func TestPanicWithRecoverOutsideTraceIsRecorded(t *testing.T) {
	v := newEnv(t)
	v.e.Use(echomw.Recover())
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp}))
	v.e.GET("/panic", func(c echo.Context) error { panic("boom") })
	v.start(t)
	if code, _ := v.do(t, http.MethodGet, "/panic", nil); code != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", code)
	}
	s := v.serverSpan(t, "GET /panic")
	if got, ok := attr(s, "http.response.status_code"); !ok || got.AsInt64() != 500 {
		t.Errorf("server span status code %v (present %v), want 500", got.AsInt64(), ok)
	}
	if s.Status().Code != codes.Error {
		t.Errorf("server span status %v, want Error", s.Status())
	}
}

// context.Context contract: once Err is non-nil it never changes. The lazy
// deadlineContext computes Err from the clock and the parent until someone
// calls Done: a handler (or a goroutine it left) that polls ctx.Err() sees
// DeadlineExceeded, then Canceled once net/http cancels the parent.
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

// The deadline expires first; the client (whose own budget, as with deadline
// propagation, is a little longer) goes away while the handler finishes. The
// request failed because of its deadline, but it is recorded as a 499 that
// is not an error.
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

// MaxTimeout zero means "a header can shorten the deadline but never
// lengthen it". TimeoutFunc chose 50ms; a header of 1000 makes it 1s.
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

// A GoroutineMonitor not made by NewGoroutineMonitor (nil maps, nil tracer)
// is accepted by ToMiddleware, which is meant to validate, and then panics
// on every request (assignment to entry in nil map).
func TestLeaksRejectsZeroMonitor(t *testing.T) {
	v := newEnv(t)
	mw, err := ttmw.LeaksConfig{Goroutines: &ttmw.GoroutineMonitor{}}.ToMiddleware()
	if err != nil {
		return // rejected: fine
	}
	v.e.Use(echomw.Recover(), mw)
	v.e.GET("/x", func(c echo.Context) error { return c.NoContent(http.StatusOK) })
	v.start(t)
	if code, body := v.do(t, http.MethodGet, "/x", nil); code != http.StatusOK {
		t.Errorf("ToMiddleware accepted a zero GoroutineMonitor; every request then fails: %d %s", code, body)
	}
}
