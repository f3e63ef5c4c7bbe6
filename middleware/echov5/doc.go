// Package echov5 is telltale's inbound half for Echo v5: middleware that
// gives every request a deadline, a server span named by its route, and an
// account of what it left behind — response bodies it never closed,
// goroutines that outlived it — on that same span, sampled or not.
//
// It exists because Echo v5 is a different framework to a middleware, not
// a new version of the same one: a handler takes a *echo.Context, which is
// a struct, not an interface; c.Response() is an http.ResponseWriter with
// Echo's Response somewhere under it; *echo.HTTPError has a string message
// and wraps its cause, and the predefined errors such as echo.ErrNotFound
// are not *echo.HTTPError at all; the error handler is called as
// e.HTTPErrorHandler(c, err). Package middleware, for Echo v4, cannot take
// a v5 handler chain, and one package cannot import both majors without
// putting both in every user's build. What the two adapters share — the
// deadline, the span, the replay of unsampled requests, the leak scope,
// the goroutine monitor, the inspector — is one core below them; this
// package holds only Echo v5's glue, and behaves as package middleware
// does, name for name.
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
//     would have carried, and exports it if the request turns out anomalous
//     (see package sampling); [ReportAnomaly] lets a handler say so itself.
//   - [Leaks] binds every outbound response body of the request to a
//     [transport.Scope]: bodies still open when the handler returns are
//     reported on the server span (attribute telltale.leaks and one leak
//     event per body, naming the handler's own file and line) and repaired.
//     With a [GoroutineMonitor], it labels the handler's goroutine with
//     runtime/pprof labels, which the goroutines it starts inherit, so that
//     the monitor can find goroutines still running after their request
//     ended and report them in that request's trace.
//   - [Inspector] is a read-only handler, to mount like net/http/pprof, that
//     shows open bodies, leak counts, recent leaks and orphaned goroutines as
//     JSON or as a small HTML page.
//
// Users import the package under the alias ttmw, next to Echo's own
// middleware package, and set it up with the tracer provider of package
// sampling and a telltale transport for the outbound calls:
//
//	import (
//		"github.com/labstack/echo/v5"
//		"github.com/labstack/echo/v5/middleware"
//		sdktrace "go.opentelemetry.io/otel/sdk/trace"
//
//		ttmw "github.com/telltale-go/telltale/middleware/echov5"
//		"github.com/telltale-go/telltale/sampling"
//		"github.com/telltale-go/telltale/transport"
//	)
//
//	tp := sampling.NewTracerProvider(
//		sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01)),
//		sdktrace.WithBatcher(exporter),
//	)
//	tr := transport.New(nil, transport.WithTracerProvider(tp), transport.WithDeadlinePropagation())
//	client := tr.Client() // for the handlers' outbound calls
//	monitor := ttmw.NewGoroutineMonitor(ttmw.GoroutineMonitorConfig{TracerProvider: tp})
//	monitor.Start()
//	defer monitor.Stop()
//
//	e := echo.New()
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
// that returns the error instead (each XConfig is an
// echo.MiddlewareConfigurator). Tracer, meter and propagators come from
// config fields, with the OpenTelemetry globals as the fallback; the package
// keeps no global state. The names it records are in package vocab.
//
// Moving a service from Echo v4 to v5, the telltale side changes only its
// import path, from "github.com/telltale-go/telltale/middleware" to
//
//	ttmw "github.com/telltale-go/telltale/middleware/echov5"
//
// and its handlers' echo.Context to *echo.Context, as Echo's own migration
// asks; every name, config field and default is the same. The 504's body is
// the same JSON; it is answered by Echo v5's DefaultHTTPErrorHandler from an
// error of this package that implements echo.HTTPStatusCoder and
// json.Marshaler, not from an *echo.HTTPError.
package echov5
