// Package upstream runs the internal services the demo gateways call: real
// HTTP servers on 127.0.0.1 whose behaviour can be switched at run time to
// each failure the incident went through (slow, dead, black hole, trickling
// or huge bodies, 5xx), so every gateway meets the same faults on real
// sockets.
//
// Each upstream is also a second telltale service, as the services behind
// a real gateway would be: an Echo app with telltale's Trace (its own
// tracer provider, named after the service, and a slow threshold of its
// own), Deadline (taking the caller's budget from Connect-Timeout-Ms) and
// Leaks. A request it finds anomalous — slow, answered 5xx or 504, its
// caller gone at the deadline it gave — is exported even when the head
// sampler dropped it, in its caller's trace, under the caller's client
// span: a trace can hold both services.
package upstream
