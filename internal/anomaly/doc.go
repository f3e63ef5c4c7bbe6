// Package anomaly is what telltale knows of each inbound request and of
// each outbound call while it can still turn out anomalous, and how it
// exports them when it does, whatever the head sampler decided.
//
// A span the head sampler dropped still has real ids: the OpenTelemetry
// SDK makes them before it asks the sampler, logs and inspector pages show
// its trace id, and the traceparent sent upstream names it. A [Request]
// keeps what the server span and every client span of an unsampled request
// would have carried — compactly, within the SDK's own limits — and, when
// an anomaly shows up (a leaked body, a failed or slow call, a deadline
// answer, a 5xx, an orphaned goroutine, a degraded answer), exports the
// request's whole local tree after the fact: same trace id, same span ids,
// same parents, the times they really had, marked telltale.replayed. A
// sampled request's evidence goes to its live spans instead; both paths
// carry the same names, attributes and events.
//
// Whether a replay is exported is decided once per request ([Decision]),
// by package sampling's sampler, within its budget: every span of the
// request, however late it comes, gets that decision. Without telltale's
// sampler and ID generator nothing is replayed ([Replayer] finds out once
// per tracer provider, without exporting anything).
package anomaly
