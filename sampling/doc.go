// Package sampling makes what telltale finds reach the trace backend
// whatever the head sampler decided.
//
// Production services record a few percent of their requests: they sample
// at the head, typically ParentBased(TraceIDRatioBased(0.01)). The rare
// request that leaks a body, waits on a dead upstream or answers a 504 is
// exactly the kind head sampling throws away. telltale keeps, for every
// unsampled request, what its spans would have carried; when it finds an
// anomaly it exports them after the fact, in the request's own trace — the
// trace id its log line and its traceparent named — with the span ids,
// times, attributes and events they would have had, the anomalous client
// spans under the request's server span. Healthy unsampled requests export
// nothing.
//
// Exporting a span after the fact takes two things from the tracer
// provider: a sampler that records the spans telltale replays (within a
// budget, so that an outage does not turn into thousands of exported
// traces a second) and an ID generator that gives them back the ids they
// had. One call sets up both:
//
//	tp := sampling.NewTracerProvider(
//		sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01)), // your sampler, unchanged
//		sdktrace.WithBatcher(exporter),
//		sdktrace.WithResource(res),
//	)
//
// [Sampler] and [IDGenerator] are the two parts, for a provider built
// otherwise. Without them, telltale behaves as it always did for unsampled
// requests — nothing is exported — and logs once that their anomalies are
// dropped.
package sampling
