// Package nethttp is telltale's inbound half for plain net/http: the same
// request deadline, server span and leak accounting as package middleware
// gives Echo, for a service built on Go's ServeMux — or on any router that
// takes func(http.Handler) http.Handler middleware, such as chi,
// gorilla/mux and alice.
//
// It exists because the work lives below it, in one core that every
// adapter shares; this package holds only what net/http makes different:
//
//   - Where the route comes from. Go's ServeMux (Go 1.22 patterns, "GET
//     /users/{id}") sets the matched pattern on the request it is given,
//     which is a copy of the one a middleware above it got. [Trace],
//     [Deadline] and [Leaks] wrap the whole mux, so each of them reads the
//     pattern from the request it handed on once its handler has returned,
//     and tells the server span: the span is renamed "GET /users/{id}" and
//     carries http.route, as do otelhttp's metrics. Installed inside the
//     mux (mux.Handle("GET /x", nethttp.Trace()(h))), they know the route
//     at once. A router that keeps its route elsewhere is read with
//     RouteFunc.
//   - How a deadline answers. A net/http handler has no error to return:
//     one that gives up on its context just returns without writing.
//     [Deadline] watches the ResponseWriter (keeping the interfaces it has:
//     http.Flusher, http.Hijacker, io.ReaderFrom, http.Pusher) and, when
//     the handler wrote nothing and the request's deadline has passed,
//     answers 504 with a JSON body, such as
//     {"message":"request deadline of 2s exceeded","timeout_ms":2000};
//     when the client went away first, 499, which nobody reads and which
//     is not an error on the span. A handler that
//     fails for another reason answers for itself (http.Error(w, msg,
//     http.StatusBadGateway)): before the deadline, an empty answer is
//     net/http's empty 200.
//
// With Go's ServeMux, outermost first, and the global providers:
//
//	mux := http.NewServeMux()
//	mux.HandleFunc("GET /users/{id}", getUser)
//	http.ListenAndServe(addr, nethttp.Trace()(nethttp.Deadline(2*time.Second)(nethttp.Leaks()(mux))))
//
// or with a tracer provider of your own, which package sampling builds so
// that the anomalies of unsampled requests are exported:
//
//	tp := sampling.NewTracerProvider(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01)), sdktrace.WithBatcher(exporter))
//	trace := nethttp.TraceWithConfig(nethttp.TraceConfig{TracerProvider: tp})
//	http.ListenAndServe(addr, trace(nethttp.Deadline(2*time.Second)(nethttp.Leaks()(mux))))
//
// With chi, whose route pattern is known only once it has routed the
// request:
//
//	r := chi.NewRouter()
//	r.Use(nethttp.TraceWithConfig(nethttp.TraceConfig{
//		TracerProvider: tp,
//		RouteFunc: func(r *http.Request) string {
//			return chi.RouteContext(r.Context()).RoutePattern()
//		},
//	}))
//	r.Use(nethttp.Deadline(2 * time.Second))
//	r.Use(nethttp.Leaks())
//
// Order matters: [Trace] outermost, so that the other two find its span in
// the request context; a recovering middleware outside Trace is fine, and
// then a panic is recorded as a 500 on the span. The configuration follows
// package middleware, field for field where net/http allows: an XConfig
// struct whose Skipper comes first, X(...) for the common case,
// XWithConfig(cfg) that panics on an invalid config, and XConfig.ToMiddleware
// that returns the error instead. The package keeps no global state; the
// names it records are in package vocab.
package nethttp
