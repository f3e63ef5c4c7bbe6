package adaptertest_test

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	ttmw "github.com/telltale-go/telltale/middleware"
)

// echoV4 is package middleware on Echo v4: a handler takes an echo.Context
// and gives up by returning an error, which Deadline turns into the 504 or
// the 499; routes are written "/users/:id", and the span is named by them.
var echoV4 = adapter{
	name: "echo-v4",
	handler: func(st stack, routes []route) http.Handler {
		e := echo.New()
		e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: st.tp, Propagators: st.prop}))
		e.Use(ttmw.DeadlineWithConfig(ttmw.DeadlineConfig{Timeout: st.timeout, TrustHeader: st.trustHeader}))
		e.Use(ttmw.LeaksWithConfig(ttmw.LeaksConfig{Goroutines: st.monitor}))
		for _, r := range routes {
			h := r.h
			e.Add(r.method, echoPath(r.template), func(c echo.Context) error {
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

// echoPath writes a neutral template in Echo's syntax: "/users/{id}" is
// "/users/:id". Echo v5 kept v4's.
func echoPath(template string) string {
	segments := strings.Split(template, "/")
	for i, s := range segments {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			segments[i] = ":" + s[1:len(s)-1]
		}
	}
	return strings.Join(segments, "/")
}
