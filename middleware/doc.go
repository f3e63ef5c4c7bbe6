// Package middleware is telltale's inbound half for Echo v4: middleware
// that gives every request a deadline, a server span named by its route,
// and an account of what it left behind — response bodies it never closed,
// goroutines that outlived it — on that same span, sampled or not.
//
// A leak is only useful if it shows up in the trace of the request that
// caused it, with the line of code that caused it, and a deadline only helps
// if every request has one and it flows into every outbound call. Package
// transport finds leaked bodies and slow upstreams; this package does the
// server side:
//
//   - [Deadline] gives each request a context deadline — a default,
//     per-route overrides, and optionally the caller's budget from the
//     Connect protocol's Connect-Timeout-Ms (and Envoy's route timeout as an
//     upper bound), always clamped. It is cooperative, like Echo's
//     ContextTimeout: no goroutine per request, no swapped ResponseWriter. A
//     handler that fails because of the deadline gets a 504 with a JSON
//     error; a client that went away gets a 499 that is not an error.
//   - [Trace] starts the server span with otelhttp, named by the Echo route
//     template ("GET /users/:id"), and records the status and the error
//     once. For a request the head sampler dropped, it keeps what the span
//     would have carried, and exports the request's whole trace if the
//     request turns out anomalous (see package sampling); [ReportAnomaly]
//     lets a handler say so itself.
//   - [Leaks] binds every outbound response body of the request to a
//     transport.Scope: bodies still open when the handler returns are
//     reported on their client spans, with the handler's line and its
//     stack, and counted on the server span (telltale.leaks, and a pointer
//     to each), and repaired. With a [GoroutineMonitor], it labels the
//     handler's goroutine with runtime/pprof labels, which the goroutines it
//     starts inherit, so that the monitor can find goroutines still running
//     after their request ended and report them in that request's trace.
//   - [Inspector] is a read-only handler, to mount like net/http/pprof, that
//     shows open bodies, leak counts, recent leaks and orphaned goroutines as
//     JSON or as a small HTML page.
//
// Users import the package next to Echo's own middleware package, under the
// alias ttmw:
//
//	import (
//		"github.com/labstack/echo/v4/middleware"
//		ttmw "github.com/telltale-go/telltale/middleware"
//	)
//
//	e.Use(middleware.Recover())
//	e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: tp}))
//	e.Use(ttmw.Deadline(2 * time.Second))
//	e.Use(ttmw.LeaksWithConfig(ttmw.LeaksConfig{Goroutines: monitor}))
//
// Order matters: [Trace] first, so that the other two find its span in the
// request context; Echo's Recover before Trace is fine, and then a panic is
// recorded as a 500 on the span. Every middleware follows Echo's idiom: an
// XConfig struct whose Skipper comes first, X(...) for the common case,
// XWithConfig(cfg) that panics on an invalid config, and XConfig.ToMiddleware
// that returns the error instead. Tracer, meter and propagators come from
// config fields, with the OpenTelemetry globals as the fallback; the package
// keeps no global state. The names it records are in package vocab.
//
// The same middleware exists for Echo v5, in package
// github.com/telltale-go/telltale/middleware/echov5 — migrating, change the
// import path — and for plain net/http (and chi, gorilla/mux, alice), in
// package github.com/telltale-go/telltale/middleware/nethttp. All three
// share one implementation; a [GoroutineMonitor] made by any of them serves
// the others.
package middleware
