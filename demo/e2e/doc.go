// Package e2e runs the demo end to end against the real Jaeger and checks,
// through Jaeger's query API, that what the README promises is what Jaeger
// shows. It needs the Jaeger binary (make -C demo jaeger); without it the
// test skips, unless TELLTALE_E2E=1 (set by make e2e) makes that a failure.
package e2e
