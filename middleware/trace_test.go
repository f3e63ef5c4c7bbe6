package middleware_test

import (
	"bytes"
	"errors"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	echomw "github.com/labstack/echo/v4/middleware"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/telltale-go/telltale/internal/testkit"
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

// With Echo's Recover before Trace, as the package doc recommends, a
// panicking handler's span records the 500 Recover answers, as an error.
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

// A handler that parses a multipart upload too large for memory leaves its
// files in the temporary directory, and net/http removes them after the
// handler — if it finds the form on the request it served. Behind plain
// otelhttp it does; behind telltale's middleware, sampled or not, alone or
// together, it must too, though each hands the handler a copy of the
// request — whether the handler returns, fails or panics (Echo's Recover
// outside), and below a middleware of Echo's own that hands on a copy
// without putting the request back (ContextTimeout).
func TestMultipartTempFilesAreRemovedAsBehindOtelhttp(t *testing.T) {
	stacks := []string{"otelhttp", "telltale sampled", "telltale unsampled", "deadline", "leaks", "trace, then ContextTimeout"}
	for _, stack := range stacks {
		for _, ending := range []string{"returns", "fails", "panics"} {
			t.Run(stack+"/"+ending, func(t *testing.T) {
				tmp := t.TempDir()
				t.Setenv("TMPDIR", tmp)
				v := newEnv(t)
				if stack == "telltale unsampled" {
					v = newUnsampledEnv(t)
				}
				v.e.Use(echomw.Recover())
				var h http.Handler = v.e
				switch stack {
				case "otelhttp":
					h = otelhttp.NewHandler(v.e, "server", otelhttp.WithTracerProvider(v.tp))
				case "deadline":
					v.e.Use(ttmw.Deadline(2 * time.Second))
				case "leaks":
					v.e.Use(ttmw.Leaks())
				case "trace, then ContextTimeout":
					v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp, Propagators: v.prop}))
					v.e.Use(echomw.ContextTimeout(2 * time.Second))
				default:
					v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp, Propagators: v.prop}))
					v.e.Use(ttmw.Deadline(2 * time.Second))
					v.e.Use(ttmw.Leaks())
				}
				spilled := make(chan int, 1)
				v.e.POST("/upload", func(c echo.Context) error {
					if err := c.Request().ParseMultipartForm(1 << 10); err != nil {
						return err
					}
					files, _ := os.ReadDir(tmp)
					spilled <- len(files)
					switch ending {
					case "fails":
						return errors.New("after parsing the upload")
					case "panics":
						panic("after parsing the upload")
					}
					return c.NoContent(http.StatusNoContent)
				})
				srv := httptest.NewServer(h)
				defer srv.Close()

				var body bytes.Buffer
				mw := multipart.NewWriter(&body)
				fw, _ := mw.CreateFormFile("file", "big.bin")
				_, _ = fw.Write(bytes.Repeat([]byte("x"), 64<<10))
				_ = mw.Close()
				resp, err := srv.Client().Post(srv.URL+"/upload", mw.FormDataContentType(), &body)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				want := http.StatusInternalServerError
				if ending == "returns" {
					want = http.StatusNoContent
				}
				if resp.StatusCode != want {
					t.Fatalf("status %d, want %d", resp.StatusCode, want)
				}
				if n := <-spilled; n == 0 {
					t.Fatal("the upload did not spill to a temporary file: the test proves nothing")
				}
				testkit.Eventually(t, "the upload's temporary files removed", func() bool {
					files, _ := os.ReadDir(tmp)
					return len(files) == 0
				})
			})
		}
	}
}
