// Package sampling makes what telltale finds reach the trace backend
// whatever the head sampler decided.
//
// Production services record a few percent of their requests: they sample
// at the head, typically ParentBased(TraceIDRatioBased(0.01)). The rare
// request that leaks a body, waits on a dead upstream or answers a 504 is
// exactly the kind head sampling throws away. telltale keeps, for every
// unsampled request, what its spans would have carried; when it finds an
// anomaly it exports the request's whole local tree after the fact — the
// server span and every client span, healthy calls too — in the request's
// own trace (the trace id its log lines and its traceparent named), with
// the span ids, times, attributes and events they would have had, each
// marked telltale.replayed. Healthy unsampled requests export nothing.
//
// Exporting a span after the fact takes two things from the tracer
// provider: a sampler that records the spans telltale replays, within a
// budget, and an ID generator that gives them back the ids they had. One
// call sets up both, with your head sampler unchanged and this package's
// options among the SDK's:
//
//	tp := sampling.NewTracerProvider(
//		sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01)), // your sampler, unchanged
//		sdktrace.WithBatcher(exporter),
//		sdktrace.WithResource(res),
//		sampling.WithBudget(10),           // anomaly traces per second, per process (the default)
//		sampling.WithMeterProvider(mp),    // telltale.anomaly.traces.exported and .dropped
//	)
//
// The budget. An outage makes every request anomalous; the budget caps
// what that adds to the trace pipeline, per process: [DefaultBudget], 10
// traces a second, gives an operator hundreds of examples a minute of each
// failure. It is fair: an anomaly — a route, a kind (leak, failed or slow
// upstream, 5xx, deadline, caller gave up, slow request, orphan, reported)
// and where it happened (the line, the upstream) — not exported in the last
// second may take the half of the budget kept for such rare anomalies,
// which an anomaly exported more recently may not: a flood of one anomaly
// cannot hide a rare one, and every distinct anomaly has its first trace
// exported at once, all within the budget, which is a ceiling. An exported trace says on its server span
// how many like it were refused since the previous one
// (telltale.replay.similar_refused). The decision is taken once per
// request and holds for every span of it, however late it comes. Refused
// traces are counted in the metric telltale.anomaly.traces.dropped, by
// kind, and summed up in one log line per kind of anomaly at most every
// 10 seconds, which says that they are not in the trace backend; the
// provider's Shutdown writes the last summary.
//
// [Sampler] and [IDGenerator] are the two parts, for a provider built
// otherwise. Without them, telltale behaves as it always did for unsampled
// requests — nothing is exported — and logs once that their anomalies are
// dropped. At fleet scale, the alternative is to sample every request at
// the head and let a tail-sampling collector keep the traces marked
// telltale.anomaly=true (see the README).
package sampling
