package middleware_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/codes"

	ttmw "github.com/telltale-go/telltale/middleware"
)

// The server span is named by the route template, not the raw path, and
// carries it as http.route; a request that matched no route gets the method
// alone, so that paths never make span names unbounded.
func TestTraceNamesSpansByRouteTemplate(t *testing.T) {
	v := newEnv(t)
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp, Propagators: v.prop}))
	v.e.GET("/users/:id", func(c echo.Context) error { return c.String(http.StatusOK, c.Param("id")) })
	v.e.POST("/users/:id/files/*", func(c echo.Context) error { return c.NoContent(http.StatusCreated) })
	v.start(t)

	if code, body := v.do(t, http.MethodGet, "/users/42", nil); code != http.StatusOK || body != "42" {
		t.Fatalf("GET /users/42 = %d %q", code, body)
	}
	s := v.serverSpan(t, "GET /users/:id")
	if got := mustAttr(t, s, "http.route").AsString(); got != "/users/:id" {
		t.Errorf("http.route = %q", got)
	}
	if got := mustAttr(t, s, "http.response.status_code").AsInt64(); got != http.StatusOK {
		t.Errorf("status attribute = %d", got)
	}
	if s.Status().Code != codes.Unset {
		t.Errorf("status = %v, want unset", s.Status())
	}

	v.do(t, http.MethodPost, "/users/7/files/a/b.txt", nil)
	v.serverSpan(t, "POST /users/:id/files/*")

	if code, _ := v.do(t, http.MethodGet, "/nowhere/123", nil); code != http.StatusNotFound {
		t.Fatalf("unrouted GET = %d", code)
	}
	s = v.serverSpan(t, "GET")
	if got := mustAttr(t, s, "url.path").AsString(); got != "/nowhere/123" {
		t.Errorf("url.path = %q", got)
	}
}

// An error a handler returns is handled once — Echo's error handler runs
// exactly once, while the span is open — and the span records the status the
// client got; a 5xx is recorded as an error with error.type, a 4xx is not.
func TestTraceRecordsStatusAndErrorOnce(t *testing.T) {
	v := newEnv(t)
	handled := v.countErrorHandling()
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp}))
	v.e.GET("/boom", func(c echo.Context) error { return errors.New("boom") })
	v.e.GET("/missing/:id", func(c echo.Context) error { return echo.NewHTTPError(http.StatusNotFound, "no such thing") })
	v.start(t)

	if code, _ := v.do(t, http.MethodGet, "/boom", nil); code != http.StatusInternalServerError {
		t.Fatalf("GET /boom = %d", code)
	}
	s := v.serverSpan(t, "GET /boom")
	if s.Status().Code != codes.Error {
		t.Errorf("status = %v, want Error", s.Status())
	}
	if got := mustAttr(t, s, "http.response.status_code").AsInt64(); got != 500 {
		t.Errorf("status attribute = %d, want 500", got)
	}
	if got := mustAttr(t, s, "error.type").AsString(); got != "*errors.errorString" {
		t.Errorf("error.type = %q", got)
	}
	var exceptions int
	for _, ev := range s.Events() {
		if ev.Name == "exception" {
			exceptions++
		}
	}
	if exceptions != 1 {
		t.Errorf("%d exception events, want 1", exceptions)
	}

	if code, body := v.do(t, http.MethodGet, "/missing/1", nil); code != http.StatusNotFound || !strings.Contains(body, "no such thing") {
		t.Fatalf("GET /missing/1 = %d %q", code, body)
	}
	s = v.serverSpan(t, "GET /missing/:id")
	if s.Status().Code != codes.Unset {
		t.Errorf("4xx status = %v, want unset", s.Status())
	}
	if _, ok := attr(s, "error.type"); ok {
		t.Errorf("4xx span has error.type")
	}
	if got := handled.Load(); got != 2 {
		t.Errorf("error handler ran %d times for 2 errors", got)
	}
}
