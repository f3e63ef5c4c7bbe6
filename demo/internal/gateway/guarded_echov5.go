package gateway

import (
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v5"
	"go.opentelemetry.io/otel/trace"

	ttmw "github.com/telltale-go/telltale/middleware/echov5"
)

// serveEchoV5 serves g with Echo v5 and telltale's middleware/echov5:
// serveEchoV4's set-up, name for name, with Echo v5's *echo.Context.
func serveEchoV5(g *guarded, cfg Config) guardedApp {
	// Finds goroutines that outlive their request (the incident's fourth
	// bug) and reports them in that request's trace.
	monitor := ttmw.NewGoroutineMonitor(ttmw.GoroutineMonitorConfig{TracerProvider: cfg.TracerProvider, Interval: time.Second})
	monitor.Start()

	e := echo.New()
	e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: cfg.TracerProvider}))
	e.Use(traceIDHeaderV5)
	e.Use(ttmw.Deadline(GuardedDeadline))
	e.Use(ttmw.LeaksWithConfig(ttmw.LeaksConfig{Goroutines: monitor}))
	e.GET(FeedPath, func(c *echo.Context) error {
		feed, missing, err := g.feed(c.Request().Context(), ttmw.ReportAnomaly)
		if err != nil {
			return httpErrorV5(err)
		}
		if missing != "" {
			c.Response().Header().Set(MissingHeader, missing)
		}
		return c.JSON(http.StatusOK, feed)
	})
	e.GET(CountPath, func(c *echo.Context) error {
		count, err := g.count(c.Request().Context())
		if err != nil {
			return httpErrorV5(err)
		}
		return c.JSON(http.StatusOK, count)
	})
	e.GET(InspectorPath, ttmw.Inspector(ttmw.InspectorConfig{Transports: g.transports, Goroutines: monitor, TraceURL: cfg.TraceURL}))
	return guardedApp{echo: EchoV5, handler: e, orphans: func() int { return len(monitor.Orphans()) }, stop: monitor.Stop}
}

// traceIDHeaderV5 is traceIDHeader for Echo v5.
func traceIDHeaderV5(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		if sc := trace.SpanContextFromContext(c.Request().Context()); sc.HasTraceID() {
			c.Response().Header().Set(TraceIDHeader, sc.TraceID().String())
		}
		return next(c)
	}
}

// httpErrorV5 is a handler's [failure] as Echo v5 answers it.
func httpErrorV5(err error) error {
	var f *failure
	if !errors.As(err, &f) {
		return err
	}
	return echo.NewHTTPError(f.status, f.message).Wrap(f.err)
}
