// Package adaptertest holds the behaviour suite that every server-side
// adapter of telltale passes, one table over the adapters: package
// middleware (Echo v4), middleware/echov5 and middleware/nethttp.
//
// The adapters are thin by design: the deadline, the server span, the
// replay of unsampled requests, the leak scope and the goroutine monitor
// live once, in internal/server, and each adapter holds only its
// framework's glue. A user who moves a service from one framework to
// another must find the same trace for the same request: the same 504 and
// its JSON, the same span names and attributes, the same leak pointer to
// the handler's line, the same orphan under the same server span, the same
// replayed trace. Each adapter's own tests check its glue; they cannot
// show that the three agree, and they drift apart as each grows. This
// suite states every behaviour once, with a neutral route ("/users/{id}")
// and a neutral handler (it answers, or it gives up), and runs it
// unchanged against each adapter, through the real OpenTelemetry SDK, real
// servers on 127.0.0.1 and a real telltale transport.
//
// A new adapter joins the suite with one test file of glue: how to build
// its server with Trace, Deadline and Leaks, how to register a neutral
// route, the span name it must produce, and how a neutral handler becomes
// one of its framework's. The package has no code of its own; the suite is
// in its external test package.
package adaptertest
