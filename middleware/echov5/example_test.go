package echov5_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/labstack/echo/v5"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	ttmw "github.com/telltale-go/telltale/middleware/echov5"
	"github.com/telltale-go/telltale/sampling"
	"github.com/telltale-go/telltale/transport"
)

// A handler that waits on its context is stopped by the deadline and
// answered by Echo's DefaultHTTPErrorHandler with a 504 and a JSON error.
func ExampleDeadline() {
	e := echo.New()
	e.Use(ttmw.Deadline(50 * time.Millisecond))
	e.GET("/report", func(c *echo.Context) error {
		<-c.Request().Context().Done() // an upstream that never answers
		return c.Request().Context().Err()
	})

	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/report", nil))
	fmt.Println(rec.Code, strings.TrimSpace(rec.Body.String()))
	// Output: 504 {"message":"request deadline of 50ms exceeded","timeout_ms":50}
}

// The whole stack, as a gateway sets it up: a tracer provider that exports
// the anomalies of the requests its head sampler drops, a server span per
// request, a deadline that follows the caller's budget, leak accounting
// with a goroutine monitor, and the inspector.
func Example() {
	tp := sampling.NewTracerProvider(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01))) // and sdktrace.WithBatcher(exporter)
	defer tp.Shutdown(context.Background())
	tr := transport.New(nil, transport.WithTracerProvider(tp), transport.WithDeadlinePropagation())
	defer tr.Close()
	client := tr.Client()
	monitor := ttmw.NewGoroutineMonitor(ttmw.GoroutineMonitorConfig{TracerProvider: tp})
	monitor.Start()
	defer monitor.Stop()

	e := echo.New()
	e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: tp}))
	e.Use(ttmw.DeadlineWithConfig(ttmw.DeadlineConfig{
		Timeout:     2 * time.Second,
		Routes:      map[string]time.Duration{"/reports/:id": 10 * time.Second},
		TrustHeader: true,
		MaxTimeout:  10 * time.Second,
	}))
	e.Use(ttmw.LeaksWithConfig(ttmw.LeaksConfig{Goroutines: monitor}))
	e.GET("/debug/telltale", ttmw.Inspector(ttmw.InspectorConfig{
		Transports: []*transport.Transport{tr},
		Goroutines: monitor,
	}))
	e.GET("/users/:id", func(c *echo.Context) error {
		req, err := http.NewRequestWithContext(c.Request().Context(), http.MethodGet, "http://users.internal/users/"+c.Param("id"), nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return echo.ErrBadGateway.Wrap(err)
		}
		defer resp.Body.Close()
		return c.Stream(resp.StatusCode, resp.Header.Get(echo.HeaderContentType), resp.Body)
	})
	_ = e // e.Start(":8080")
}
