package nethttp

import "github.com/telltale-go/telltale/internal/server"

// A GoroutineMonitor finds goroutines that outlived the request that started
// them — a handler answers after its timeout, and the goroutines it fanned
// out to keep calling upstreams — and reports each group of them (same
// request, same stack) once, as a span (telltale.goroutine.orphaned) in the
// trace of that request, carrying their stack and the line they are
// blocked on. Pass it to LeaksConfig.Goroutines, Start it, Stop it at
// shutdown. An orphan is a goroutine that runs the application's own code
// (its main module, package main, or AppPackages): a library's worker a
// request happened to start is not one. Checks cost one goroutine profile
// each, at most once per Interval. The same monitor serves the Echo
// adapters (package middleware) and this one.
type GoroutineMonitor = server.GoroutineMonitor

// GoroutineMonitorConfig configures a [GoroutineMonitor].
type GoroutineMonitorConfig = server.GoroutineMonitorConfig

// An OrphanedGoroutine is a group of goroutines with the same stack, started
// by the same request, still running after it ended. Its Route is the
// request's pattern ("GET /users/{id}").
type OrphanedGoroutine = server.OrphanedGoroutine

// Defaults of [GoroutineMonitorConfig].
const (
	DefaultGoroutineCheckInterval = server.DefaultGoroutineCheckInterval
	DefaultGoroutineGrace         = server.DefaultGoroutineGrace
	DefaultMaxOrphanReports       = server.DefaultMaxOrphanReports
	DefaultEndedRequestHistory    = server.DefaultEndedRequestHistory
)

// NewGoroutineMonitor returns a monitor with the given config; zero fields
// take their defaults, negative ones too. It starts no goroutine: call
// Start for periodic checks.
func NewGoroutineMonitor(cfg GoroutineMonitorConfig) *GoroutineMonitor {
	return server.NewGoroutineMonitor(cfg)
}
