// Package telemetry sets up the demo gateways' tracing: the head sampler
// every gateway shares, telltale's sampling for the guarded one, an
// OTLP/HTTP exporter to Jaeger (or the user's own collector), and a
// [Recorder] that watches the spans the provider records — the ones it
// exports — so the report can count what each gateway sent.
package telemetry
