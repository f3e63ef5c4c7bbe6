package adaptertest_test

import (
	"net/http"

	"github.com/labstack/echo/v5"

	ttmw "github.com/telltale-go/telltale/middleware/echov5"
)

// echoV5 is package middleware/echov5 on Echo v5: a handler takes a
// *echo.Context and gives up by returning an error, which Deadline turns
// into the 504 or the 499; routes are written as in v4, "/users/:id".
var echoV5 = adapter{
	name: "echo-v5",
	handler: func(st stack, routes []route) http.Handler {
		e := echo.New()
		e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: st.tp, Propagators: st.prop}))
		e.Use(ttmw.DeadlineWithConfig(ttmw.DeadlineConfig{Timeout: st.timeout, TrustHeader: st.trustHeader}))
		e.Use(ttmw.LeaksWithConfig(ttmw.LeaksConfig{Goroutines: st.monitor}))
		for _, r := range routes {
			h := r.h
			e.Add(r.method, echoPath(r.template), func(c *echo.Context) error {
				rep, err := h(c.Request().Context())
				if err != nil {
					return err
				}
				return c.String(rep.status, rep.body)
			})
		}
		return e
	},
	newMonitor: ttmw.NewGoroutineMonitor,
	spanName:   func(method, template string) string { return method + " " + echoPath(template) },
	httpRoute:  echoPath,
}
