package middleware_test

import (
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/internal/faulty"
	ttmw "github.com/telltale-go/telltale/middleware"
	"github.com/telltale-go/telltale/transport"
	"github.com/telltale-go/telltale/vocab"
)

// TestFaultMatrixThroughEcho runs the transport's fault matrix through a
// real Echo server with the full middleware stack: the handler calls the
// faulty upstream with its request context. The client gets its answer
// within the request deadline plus a margin — 504 when the deadline ended the
// call, 502 for other failures, 200 otherwise — the client span carries the
// fault's error.type, the server span the status, and no body or connection
// is left behind (goleak checks goroutines after the package's tests).
func TestFaultMatrixThroughEcho(t *testing.T) {
	for _, f := range faulty.Faults() {
		t.Run(f.Name, func(t *testing.T) {
			up := f.Start(t)
			v := newEnv(t)
			tr := transport.New(f.Base(), transport.WithTracerProvider(v.tp), transport.WithPropagators(v.prop), transport.WithLogger(slog.New(slog.DiscardHandler)))
			t.Cleanup(func() { _ = tr.Close() })
			client := &http.Client{Transport: tr}

			v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp, Propagators: v.prop}))
			v.e.Use(ttmw.Deadline(faulty.Deadline))
			v.e.Use(ttmw.Leaks())
			v.e.GET("/call", func(c echo.Context) error {
				if err := faulty.Call(c.Request().Context(), client, up.URL); err != nil {
					return echo.NewHTTPError(http.StatusBadGateway, "upstream failed").WithInternal(err)
				}
				return c.NoContent(http.StatusOK)
			})
			v.start(t)

			start := time.Now()
			code, body := v.do(t, http.MethodGet, "/call", nil)
			if took := time.Since(start); took > faulty.Deadline+faulty.Margin {
				t.Errorf("answered after %s with a %s deadline", took, faulty.Deadline)
			}
			want := http.StatusOK
			switch {
			case f.ErrorType == vocab.ErrorDeadlineExceeded:
				want = http.StatusGatewayTimeout
			case f.Failing():
				want = http.StatusBadGateway
			}
			if code != want {
				t.Errorf("status %d %q, want %d", code, body, want)
			}

			server := v.serverSpan(t, "GET /call")
			if got := mustAttr(t, server, "http.response.status_code").AsInt64(); got != int64(want) {
				t.Errorf("server span status code %d, want %d", got, want)
			}
			client1 := v.waitSpan(t, func(s sdktrace.ReadOnlySpan) bool {
				return s.SpanKind() == trace.SpanKindClient
			}, "client span")
			if client1.Parent().SpanID() != server.SpanContext().SpanID() {
				t.Error("the client span is not a child of the server span")
			}
			if f.Failing() {
				if got := mustAttr(t, client1, "error.type").AsString(); got != f.ErrorType {
					t.Errorf("client span error.type %q, want %q", got, f.ErrorType)
				}
			}
			transport.VerifyNoOpenBodies(t, tr)
			tr.CloseIdleConnections()
			faulty.WaitNoConns(t, up)
		})
	}
}
