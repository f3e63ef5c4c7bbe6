// Package telemetry sets up the demo gateways' tracing: an OTLP/HTTP
// exporter to Jaeger (or the user's own collector), and a [Recorder] that
// watches the same spans Jaeger receives so the demo's report can name the
// traces worth opening without querying Jaeger.
package telemetry
