package adaptertest_test

import (
	"io"
	"net/http"

	"github.com/telltale-go/telltale/middleware/nethttp"
)

// netHTTP is package middleware/nethttp around Go's ServeMux: the three
// middlewares wrap the whole mux, which registers "GET /users/{id}" and
// sets the pattern the span is named by; a handler gives up by returning
// without writing, and Deadline answers for it.
var netHTTP = adapter{
	name: "net-http",
	handler: func(st stack, routes []route) http.Handler {
		mux := http.NewServeMux()
		for _, r := range routes {
			h := r.h
			mux.HandleFunc(r.method+" "+r.template, func(w http.ResponseWriter, req *http.Request) {
				rep, err := h(req.Context())
				if err != nil {
					return
				}
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				w.WriteHeader(rep.status)
				_, _ = io.WriteString(w, rep.body)
			})
		}
		trace := nethttp.TraceWithConfig(nethttp.TraceConfig{TracerProvider: st.tp, Propagators: st.prop})
		deadline := nethttp.DeadlineWithConfig(nethttp.DeadlineConfig{Timeout: st.timeout, TrustHeader: st.trustHeader})
		leaks := nethttp.LeaksWithConfig(nethttp.LeaksConfig{Goroutines: st.monitor})
		return trace(deadline(leaks(mux)))
	},
	newMonitor: nethttp.NewGoroutineMonitor,
	spanName:   func(method, template string) string { return method + " " + template },
	httpRoute:  func(template string) string { return template },
}
