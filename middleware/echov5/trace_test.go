package echov5_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v5"
	echomw "github.com/labstack/echo/v5/middleware"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	ttmw "github.com/telltale-go/telltale/middleware/echov5"
	"github.com/telltale-go/telltale/vocab"
)

// The server span is named by the route template, not the raw path, and
// carries it as http.route with the status; a request that matched no
// route gets the method alone, so that paths never make span names
// unbounded.
func TestTraceNamesSpansByRouteTemplate(t *testing.T) {
	v := newEnv(t)
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp, Propagators: v.prop}))
	v.e.GET("/users/:id", func(c *echo.Context) error { return c.String(http.StatusOK, c.Param("id")) })
	v.e.POST("/users/:id/files/*", func(c *echo.Context) error { return c.NoContent(http.StatusCreated) })
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

	if code, _ := v.do(t, http.MethodPost, "/users/7/files/a/b.txt", nil); code != http.StatusCreated {
		t.Fatalf("POST = %d", code)
	}
	s = v.serverSpan(t, "POST /users/:id/files/*")
	if got := mustAttr(t, s, "http.response.status_code").AsInt64(); got != http.StatusCreated {
		t.Errorf("status attribute = %d", got)
	}

	if code, _ := v.do(t, http.MethodGet, "/nowhere/123", nil); code != http.StatusNotFound {
		t.Fatalf("unrouted GET = %d", code)
	}
	s = v.serverSpan(t, "GET")
	if got := mustAttr(t, s, "url.path").AsString(); got != "/nowhere/123" {
		t.Errorf("url.path = %q", got)
	}
	if got := mustAttr(t, s, "http.response.status_code").AsInt64(); got != http.StatusNotFound {
		t.Errorf("unrouted status attribute = %d", got)
	}
}

// Registered with e.Pre, Trace starts before Echo routes the request; the
// span still ends named by the route Echo found, with http.route.
func TestTraceBeforeRoutingNamesSpanByRoute(t *testing.T) {
	v := newEnv(t)
	v.e.Pre(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp}))
	v.e.GET("/users/:id", func(c *echo.Context) error { return c.NoContent(http.StatusNoContent) })
	v.start(t)
	if code, _ := v.do(t, http.MethodGet, "/users/42", nil); code != http.StatusNoContent {
		t.Fatalf("status %d", code)
	}
	s := v.serverSpan(t, "GET /users/:id")
	if got := mustAttr(t, s, "http.route").AsString(); got != "/users/:id" {
		t.Errorf("http.route = %q", got)
	}
}

// An error a handler returns is handled once — Echo's error handler runs
// exactly once per error, while the span is open — and the span records
// the status the client got. A 5xx is recorded as an error with error.type
// and one exception event whose message is a sentence; a 4xx is not. Echo
// v5's predefined errors, which are not *echo.HTTPError, are read by their
// status.
func TestTraceRecordsStatusAndErrorOnce(t *testing.T) {
	v := newEnv(t)
	handled := v.countErrorHandling()
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp}))
	v.e.GET("/boom", func(c *echo.Context) error { return errors.New("boom") })
	v.e.GET("/unavailable", func(c *echo.Context) error { return echo.ErrServiceUnavailable })
	v.e.GET("/upstream", func(c *echo.Context) error {
		return echo.NewHTTPError(http.StatusBadGateway, "upstream failed").Wrap(errors.New("connection reset"))
	})
	v.e.GET("/missing/:id", func(c *echo.Context) error { return echo.NewHTTPError(http.StatusNotFound, "no such thing") })
	v.e.GET("/forbidden", func(c *echo.Context) error { return echo.ErrForbidden })
	v.start(t)

	for _, tc := range []struct {
		path, span      string
		status          int
		errorType, text string // empty for a 4xx: no error recorded
	}{
		{"/boom", "GET /boom", 500, "*errors.errorString", "boom"},
		{"/unavailable", "GET /unavailable", 503, "http_503", "Service Unavailable"},
		{"/upstream", "GET /upstream", 502, "*errors.errorString", "upstream failed: connection reset"},
		{"/missing/1", "GET /missing/:id", 404, "", ""},
		{"/forbidden", "GET /forbidden", 403, "", ""},
	} {
		code, body := v.do(t, http.MethodGet, tc.path, nil)
		if code != tc.status {
			t.Fatalf("GET %s = %d %q, want %d", tc.path, code, body, tc.status)
		}
		s := v.serverSpan(t, tc.span)
		if got := mustAttr(t, s, "http.response.status_code").AsInt64(); got != int64(tc.status) {
			t.Errorf("%s: status attribute = %d", tc.path, got)
		}
		exceptions := events(s, "exception")
		if tc.errorType == "" {
			if s.Status().Code != codes.Unset {
				t.Errorf("%s: 4xx status = %v, want unset", tc.path, s.Status())
			}
			if et, ok := attr(s, "error.type"); ok {
				t.Errorf("%s: 4xx span has error.type %q", tc.path, et.AsString())
			}
			if len(exceptions) != 0 {
				t.Errorf("%s: 4xx span has %d exception events", tc.path, len(exceptions))
			}
			continue
		}
		if s.Status().Code != codes.Error || s.Status().Description != tc.text {
			t.Errorf("%s: status = %v, want Error %q", tc.path, s.Status(), tc.text)
		}
		if got := mustAttr(t, s, "error.type").AsString(); got != tc.errorType {
			t.Errorf("%s: error.type = %q, want %q", tc.path, got, tc.errorType)
		}
		if len(exceptions) != 1 {
			t.Fatalf("%s: %d exception events, want 1", tc.path, len(exceptions))
		}
		if msg, _ := attrOf(exceptions[0].Attributes, "exception.message"); msg.AsString() != tc.text {
			t.Errorf("%s: exception.message = %q, want %q", tc.path, msg.AsString(), tc.text)
		}
	}
	if got := handled.Load(); got != 5 {
		t.Errorf("error handler ran %d times for 5 errors", got)
	}
}

// With Echo's Recover before Trace, as the package doc recommends, a
// panicking handler's span records the 500 Recover answers, as an error.
func TestPanicWithRecoverOutsideTraceIsRecorded(t *testing.T) {
	v := newEnv(t)
	v.e.Use(echomw.Recover())
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp}))
	v.e.GET("/panic", func(c *echo.Context) error { panic("boom") })
	v.start(t)
	if code, _ := v.do(t, http.MethodGet, "/panic", nil); code != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", code)
	}
	s := v.serverSpan(t, "GET /panic")
	if got := mustAttr(t, s, "http.response.status_code").AsInt64(); got != 500 {
		t.Errorf("server span status code %d, want 500", got)
	}
	if s.Status().Code != codes.Error || mustAttr(t, s, "error.type").AsString() != vocab.ErrorPanic {
		t.Errorf("server span status %v, attributes %v", s.Status(), s.Attributes())
	}
}

// An unsampled request that answers a 5xx is exported after all, in its
// caller's trace, with the ids it had, its route name, its status and its
// error.
func TestUnsampled5xxIsExported(t *testing.T) {
	v := newUnsampledEnv(t)
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp, Propagators: v.prop}))
	seen := make(chan trace.SpanContext, 1)
	v.e.GET("/things/:id", func(c *echo.Context) error {
		seen <- trace.SpanContextFromContext(c.Request().Context())
		return errors.New("database is down")
	})
	v.e.GET("/fine", func(c *echo.Context) error { return c.NoContent(http.StatusOK) })
	v.start(t)

	const parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00" // not sampled
	caller := trace.SpanContextFromContext(v.prop.Extract(context.Background(), propagation.HeaderCarrier{"Traceparent": {parent}}))
	if code, _ := v.do(t, http.MethodGet, "/fine", http.Header{"Traceparent": {parent}}); code != http.StatusOK {
		t.Fatalf("GET /fine = %d", code)
	}
	if code, _ := v.do(t, http.MethodGet, "/things/1", http.Header{"Traceparent": {parent}}); code != http.StatusInternalServerError {
		t.Fatalf("GET /things/1 = %d", code)
	}
	sc := <-seen
	if sc.IsSampled() {
		t.Fatal("the head sampler sampled the request: the test proves nothing")
	}
	s := v.serverSpan(t, "GET /things/:id")
	if s.SpanContext().SpanID() != sc.SpanID() || s.SpanContext().TraceID() != caller.TraceID() || s.Parent().SpanID() != caller.SpanID() {
		t.Errorf("exported span %v under %v; the handler saw %v, the caller was %v", s.SpanContext(), s.Parent(), sc, caller)
	}
	if mustAttr(t, s, "http.route").AsString() != "/things/:id" || mustAttr(t, s, "http.response.status_code").AsInt64() != 500 ||
		!mustAttr(t, s, vocab.AttrReplayed).AsBool() || mustAttr(t, s, "error.type").AsString() != "*errors.errorString" {
		t.Errorf("attributes %v", s.Attributes())
	}
	if s.Status().Code != codes.Error || len(events(s, "exception")) != 1 {
		t.Errorf("status %v, events %v", s.Status(), s.Events())
	}
	for _, s := range v.rec.Ended() {
		if s.Name() == "GET /fine" {
			t.Error("a healthy unsampled request was exported")
		}
	}
}

// A handler that reports its own anomaly gets it on its server span, and
// an unsampled request is exported for it.
func TestReportAnomaly(t *testing.T) {
	for _, sampled := range []bool{true, false} {
		v := newEnv(t)
		if !sampled {
			v = newUnsampledEnv(t)
		}
		v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp}))
		v.e.GET("/feed", func(c *echo.Context) error {
			ttmw.ReportAnomaly(c.Request().Context(), "partial: ads missing")
			return c.NoContent(http.StatusOK)
		})
		v.start(t)
		v.do(t, http.MethodGet, "/feed", nil)
		s := v.serverSpan(t, "GET /feed")
		evs := events(s, vocab.EventAnomaly)
		if len(evs) != 1 {
			t.Fatalf("sampled %v: events %v", sampled, s.Events())
		}
		if why, _ := attrOf(evs[0].Attributes, vocab.AttrAnomalyReason); why.AsString() != "partial: ads missing" {
			t.Errorf("reason %q", why.AsString())
		}
		if !mustAttr(t, s, vocab.AttrDegraded).AsBool() {
			t.Error("a 200 after a reported anomaly is not marked degraded")
		}
	}
	ttmw.ReportAnomaly(context.Background(), "outside a request") // does nothing
}

// The Skipper skips the span, and the handler's error is Echo's to handle,
// once, as without Trace.
func TestTraceSkipper(t *testing.T) {
	v := newEnv(t)
	handled := v.countErrorHandling()
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp,
		Skipper: func(c *echo.Context) bool { return c.Path() == "/healthz" }}))
	v.e.GET("/healthz", func(c *echo.Context) error { return echo.ErrServiceUnavailable })
	v.e.GET("/users", func(c *echo.Context) error { return c.NoContent(http.StatusOK) })
	v.start(t)
	if code, _ := v.do(t, http.MethodGet, "/healthz", nil); code != http.StatusServiceUnavailable {
		t.Fatalf("skipped route = %d", code)
	}
	v.do(t, http.MethodGet, "/users", nil)
	v.serverSpan(t, "GET /users")
	for _, s := range v.rec.Ended() {
		if strings.Contains(s.Name(), "healthz") {
			t.Errorf("skipped request traced: %s", s.Name())
		}
	}
	if got := handled.Load(); got != 1 {
		t.Errorf("error handler ran %d times for 1 error", got)
	}
}

func TestTraceConfigValidation(t *testing.T) {
	bad := map[string]ttmw.TraceConfig{
		"negative slow":       {Slow: -1},
		"negative slow route": {SlowRoutes: map[string]time.Duration{"/x": -1}},
	}
	for name, cfg := range bad {
		if _, err := cfg.ToMiddleware(); err == nil || !strings.HasPrefix(err.Error(), "echov5: ") {
			t.Errorf("%s: err = %v, want an error prefixed \"echov5: \"", name, err)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("TraceWithConfig did not panic on an invalid config")
		}
	}()
	ttmw.TraceWithConfig(ttmw.TraceConfig{Slow: -1})
}

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

// The exception Trace records for a 5xx carries the handler's error text
// with the query values of the URL a failed http.Client call names
// redacted.
func TestTraceExceptionRedactsQueryValues(t *testing.T) {
	v := newEnv(t)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close() // connection refused
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp}))
	v.e.GET("/call", func(c *echo.Context) error {
		req, err := http.NewRequestWithContext(c.Request().Context(), http.MethodGet, deadURL+"/api?key=hunter2", nil)
		if err != nil {
			return err
		}
		resp, err := v.client.Do(req)
		if err != nil {
			return echo.NewHTTPError(http.StatusBadGateway, "upstream failed").Wrap(err)
		}
		resp.Body.Close()
		return c.NoContent(http.StatusOK)
	})
	v.start(t)
	if code, _ := v.do(t, http.MethodGet, "/call", nil); code != http.StatusBadGateway {
		t.Fatalf("status %d", code)
	}
	s := v.serverSpan(t, "GET /call")
	txt := spanText(s)
	if strings.Contains(txt, "hunter2") {
		t.Errorf("server span carries a query value:\n%s", txt)
	}
	if !strings.HasPrefix(s.Status().Description, "upstream failed: Get ") {
		t.Errorf("status description %q, want the message, then the call's error", s.Status().Description)
	}
}

// opaqueWriter is a writer that hides Echo's Response under it: it has no
// Unwrap.
type opaqueWriter struct{ w http.ResponseWriter }

func (o opaqueWriter) Header() http.Header         { return o.w.Header() }
func (o opaqueWriter) Write(b []byte) (int, error) { return o.w.Write(b) }
func (o opaqueWriter) WriteHeader(code int)        { o.w.WriteHeader(code) }

// Behind a middleware that wraps the response in a writer hiding Echo's
// Response, Trace still records the status the client gets, and the
// handler's error is answered once.
func TestTraceBehindAnOpaqueWriter(t *testing.T) {
	v := newEnv(t)
	handled := v.countErrorHandling()
	v.e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			rw := c.Response()
			c.SetResponse(opaqueWriter{rw})
			defer c.SetResponse(rw)
			return next(c)
		}
	})
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp}))
	v.e.GET("/boom", func(c *echo.Context) error { return errors.New("boom") })
	v.e.GET("/ok", func(c *echo.Context) error { return c.String(http.StatusCreated, "made") })
	v.start(t)
	if code, body := v.do(t, http.MethodGet, "/ok", nil); code != http.StatusCreated || body != "made" {
		t.Fatalf("GET /ok = %d %q", code, body)
	}
	if code, _ := v.do(t, http.MethodGet, "/boom", nil); code != http.StatusInternalServerError {
		t.Fatalf("GET /boom = %d", code)
	}
	if got := mustAttr(t, v.serverSpan(t, "GET /ok"), "http.response.status_code").AsInt64(); got != http.StatusCreated {
		t.Errorf("GET /ok: status attribute %d", got)
	}
	s := v.serverSpan(t, "GET /boom")
	if s.Status().Code != codes.Error || mustAttr(t, s, "http.response.status_code").AsInt64() != 500 {
		t.Errorf("GET /boom: status %v, attributes %v", s.Status(), s.Attributes())
	}
	if got := handled.Load(); got != 1 {
		t.Errorf("error handler ran %d times for 1 error", got)
	}
}
