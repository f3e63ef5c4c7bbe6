// Package jaeger builds, starts and queries the real Jaeger v2 the demo
// sends its traces to. Jaeger lives in a Go module of its own (demo/jaeger)
// because its dependency graph conflicts with current OpenTelemetry; this
// package only runs `go build` there and talks to the binary over loopback.
package jaeger
