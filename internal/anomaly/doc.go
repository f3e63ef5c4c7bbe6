// Package anomaly exports the spans of requests that the head sampler
// dropped and in which telltale then found something wrong: a leaked body,
// a failed or slow call, a deadline answer, a 5xx, a panic, an orphaned
// goroutine.
//
// A dropped span still has real ids: the OpenTelemetry SDK makes them
// before it asks the sampler, logs and inspector pages show its trace id,
// and the traceparent sent upstream names it. When telltale finds an
// anomaly, it starts the span again after the fact — same trace id, same
// span id, same parent, the start and end times it really had — with a
// context that marks it as a replay ([Start]). Package sampling's sampler
// admits such spans within a budget, and its ID generator gives them the
// ids they ask for; without them, a replay is simply not recorded.
//
// A [Server] keeps what is needed to replay the server span of an unsampled
// request until nothing of the request can report an anomaly any more.
package anomaly
