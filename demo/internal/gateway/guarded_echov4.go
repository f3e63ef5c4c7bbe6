package gateway

import (
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	ttmw "github.com/telltale-go/telltale/middleware"
)

// serveEchoV4 serves g with Echo v4 and telltale's middleware package.
func serveEchoV4(g *guarded, cfg Config) guardedApp {
	// Finds goroutines that outlive their request (the incident's fourth
	// bug) and reports them in that request's trace.
	monitor := ttmw.NewGoroutineMonitor(ttmw.GoroutineMonitorConfig{TracerProvider: cfg.TracerProvider, Interval: time.Second})
	monitor.Start()

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: cfg.TracerProvider}))
	e.Use(traceIDHeader)
	e.Use(ttmw.Deadline(GuardedDeadline))
	e.Use(ttmw.LeaksWithConfig(ttmw.LeaksConfig{Goroutines: monitor}))
	e.GET(FeedPath, func(c echo.Context) error {
		feed, missing, err := g.feed(c.Request().Context(), ttmw.ReportAnomaly)
		if err != nil {
			return httpErrorV4(err)
		}
		if missing != "" {
			c.Response().Header().Set(MissingHeader, missing)
		}
		return c.JSON(http.StatusOK, feed)
	})
	e.GET(CountPath, func(c echo.Context) error {
		count, err := g.count(c.Request().Context())
		if err != nil {
			return httpErrorV4(err)
		}
		return c.JSON(http.StatusOK, count)
	})
	e.GET(InspectorPath, ttmw.Inspector(ttmw.InspectorConfig{Transports: g.transports, Goroutines: monitor, TraceURL: cfg.TraceURL}))
	return guardedApp{echo: EchoV4, handler: e, orphans: func() int { return len(monitor.Orphans()) }, stop: monitor.Stop}
}

// httpErrorV4 is a handler's [failure] as Echo v4 answers it.
func httpErrorV4(err error) error {
	var f *failure
	if !errors.As(err, &f) {
		return err
	}
	return echo.NewHTTPError(f.status, f.message).WithInternal(f.err)
}
