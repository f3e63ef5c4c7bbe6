// Package vocab names what telltale records, so that tests, dashboards and
// alerts can refer to it by constant: span events and attributes, the span
// of an orphaned goroutine, metric names, and the values of error.type that
// telltale sets.
//
// Every name telltale makes up lives under telltale.*: the names owned by
// OpenTelemetry's semantic conventions (error.type, url.full, http.route,
// server.address, code.*) are used for what they mean there, and come from
// the semconv package. Durations are float64 milliseconds (attribute names
// end in _ms), which Jaeger shows as they are.
//
// The packages that record these names are transport (client spans and the
// client metrics) and middleware (server spans and orphaned goroutines);
// package sampling exports the spans of unsampled requests in which telltale
// found an anomaly, and counts them.
package vocab
