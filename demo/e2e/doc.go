// Package e2e runs the demo end to end against the real Jaeger and checks,
// through Jaeger's query API, that what the README promises is what Jaeger
// shows: at 1% head sampling, then with a sampled twin run, then behind the
// tail-sampling fleet. It also renders one replayed trace as text
// (testdata/replayed-trace.txt) and, with Chromium and the official Jaeger
// UI build beside the repository, in the UI (testdata/replayed-trace.png).
// It runs only with TELLTALE_E2E=1 (set by make e2e), and then needs the
// Jaeger binary (make -C demo jaeger).
package e2e
