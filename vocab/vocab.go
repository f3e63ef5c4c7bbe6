package vocab

// Span events.
const (
	// EventBodyLeaked is recorded on the client span of a leaked response
	// body, and on the server span of the request that leaked it: its
	// attributes say why ([AttrLeakReason]), where the request was made
	// (code.function.name, code.file.path, code.line.number,
	// code.stacktrace), how much was read and how long the body was open.
	EventBodyLeaked = "telltale.response.body.leaked"

	// EventUpstreamSlow is recorded on the client span of a call that was
	// still waiting when a slow threshold passed, at the moment it passed
	// (the call's start plus the threshold), whatever happened next:
	// [AttrSlowKind] says which threshold, [AttrSlowWaitingFor] what the
	// call was waiting for.
	EventUpstreamSlow = "telltale.upstream.slow"

	// EventRequestSlow is recorded on the server span of a request that
	// was still running when its slow threshold passed, at that moment;
	// [AttrRequestSlowThreshold] says which threshold.
	EventRequestSlow = "telltale.request.slow"

	// EventAnomaly is recorded on the server span of a request its handler
	// reported as anomalous (middleware.ReportAnomaly); AttrAnomalyReason
	// says why.
	EventAnomaly = "telltale.anomaly"

	// EventTimeoutHeaderInvalid is recorded on the server span of a request
	// whose deadline header could not be used; [AttrTimeoutHeaderError] says
	// why.
	EventTimeoutHeaderInvalid = "telltale.deadline.header_invalid"
)

// SpanGoroutineOrphaned is the name of the span reporting goroutines that
// outlived the request that started them, in that request's trace.
const SpanGoroutineOrphaned = "telltale.goroutine.orphaned"

// AttrAnomaly marks, with true, the span on which telltale found an
// anomaly — a leaked body, a failed or slow call, a 5xx, a deadline
// answer, an overrun, a degraded answer, an orphaned goroutine — in every
// sampling mode: the one attribute a tail sampler needs to keep every
// anomalous trace (a boolean_attribute policy), and a tag to search for.
const AttrAnomaly = "telltale.anomaly"

// Durations are recorded in whole milliseconds, as int64 attributes whose
// key ends in _ms.

// Attributes of client spans and their events. A healthy call carries only
// otelhttp's attributes, [AttrDeadlineRemaining] and, for a named
// transport, [AttrPeerService]; the others describe anomalies (a leak, an
// error, a slow call) and are recorded only then.
const (
	AttrDeadlineRemaining = "telltale.deadline.remaining_ms" // time left before the context deadline when the request was sent

	// AttrPeerService is the semantic conventions' peer.service (v1.38 and
	// earlier; later service.peer.name): the upstream's name, from the
	// transport's WithName. Jaeger draws its dependency graph from it.
	AttrPeerService = "peer.service"

	AttrBodyEnd          = "telltale.response.body.end"           // how the body ended: one of the BodyEnd values
	AttrBodyReadBytes    = "telltale.response.body.read_bytes"    // bytes the application read
	AttrBodyDrainedBytes = "telltale.response.body.drained_bytes" // bytes Close discarded so that the connection could be reused
	AttrBodyOpen         = "telltale.response.body.open_ms"       // how long the body stayed open after the response headers
	AttrTTFB             = "telltale.ttfb_ms"                     // time until the response headers

	AttrConnDNS     = "telltale.conn.dns_ms"     // a connection dialed for this request by the hardened transport: DNS time
	AttrConnConnect = "telltale.conn.connect_ms" // the same connection's TCP connect time

	AttrSlowKind       = "telltale.upstream.slow.kind"         // on EventUpstreamSlow: SlowTTFB or SlowTotal
	AttrSlowThreshold  = "telltale.upstream.slow.threshold_ms" // on EventUpstreamSlow: the threshold crossed
	AttrSlowObserved   = "telltale.upstream.slow.observed_ms"  // on EventUpstreamSlow: how long that wait lasted in the end (until the headers, or the whole call)
	AttrSlowWaitingFor = "telltale.upstream.slow.waiting_for"  // on EventUpstreamSlow: what the call was waiting for when the threshold passed, one of the WaitingFor values

	AttrLeakReason   = "telltale.leak.reason"   // on EventBodyLeaked: unreachable, out_of_scope, too_old or open_at_close
	AttrLeakRepaired = "telltale.leak.repaired" // on EventBodyLeaked: telltale closed the body
	AttrLeakAge      = "telltale.leak.age_ms"   // on EventBodyLeaked: how long the body had been open
)

// Values of [AttrBodyEnd].
const (
	BodyEndEOF           = "eof"            // read to its end
	BodyEndClosed        = "closed"         // closed before its end, and not drained to it
	BodyEndClosedDrained = "closed_drained" // closed before its end, then drained to it: the connection is reused
	BodyEndReadError     = "read_error"     // a read failed
	BodyEndLeaked        = "leaked"         // reported as leaked
)

// Values of [AttrSlowKind].
const (
	SlowTTFB  = "ttfb"  // the response headers had not come when the threshold passed
	SlowTotal = "total" // the whole exchange, until the body ended, was still going when the threshold passed
)

// Values of [AttrSlowWaitingFor].
const (
	WaitingForConnection = "connection"       // the connection was being dialed
	WaitingForHeaders    = "response_headers" // the request was sent (or being sent); no response headers yet
	WaitingForBody       = "response_body"    // the headers had come; the body was being read, or held open
)

// Attributes of server spans, recorded by the middleware.
const (
	AttrLeaks = "telltale.leaks" // response bodies the request left open, when not zero

	AttrDeadlineTimeout  = "telltale.deadline.timeout_ms"     // the deadline given to the request, from its start
	AttrDeadlineSource   = "telltale.deadline.source"         // where it came from: header, envoy, func, route, default or parent
	AttrDeadlineClamped  = "telltale.deadline.clamped"        // the requested timeout was longer than allowed
	AttrDeadlineOverrun  = "telltale.deadline.overrun_ms"     // how long the handler ran past its deadline, set only past the overrun grace: the handler ignored its deadline
	AttrDeadlineExceeded = "telltale.deadline.exceeded"       // the request was answered because its deadline passed
	AttrClientGone       = "telltale.client_gone"             // the client went away before the handler finished
	AttrCallerGaveUp     = "telltale.client_gone.at_deadline" // the client went away at or after the deadline it propagated: it gave up waiting, an anomaly (otherwise it canceled on purpose)

	AttrDegraded = "telltale.degraded" // the request succeeded (below 400) though a call it made failed, or its handler reported an anomaly

	AttrRequestSlowThreshold = "telltale.request.slow.threshold_ms" // on EventRequestSlow: the threshold crossed

	AttrTimeoutHeaderError = "telltale.deadline.header_error" // on EventTimeoutHeaderInvalid: why the header was ignored
	AttrAnomalyReason      = "telltale.anomaly.reason"        // on EventAnomaly: what the handler said

	AttrGoroutineCount    = "telltale.goroutine.count"                // goroutines in an orphaned group (same request, same stack)
	AttrGoroutineRequest  = "telltale.goroutine.request"              // the request's id, as in the telltale.request pprof label
	AttrGoroutineEndedAgo = "telltale.goroutine.request_ended_ago_ms" // how long ago their request ended
)

// Attributes of replayed spans: spans the head sampler had dropped and
// that telltale exported afterwards, because their request turned out
// anomalous. A replayed trace is the request's whole local tree as a
// sampled one would have been exported — the server span and every client
// span, healthy ones too — within the SDK's limits; what did not fit is
// counted on the server span.
const (
	AttrReplayed                 = "telltale.replayed"                    // true on every replayed span
	AttrReplaySimilarRefused     = "telltale.replay.similar_refused"      // on the server span: anomalies like this one refused by the budget since the previous one was exported
	AttrReplayClientSpansDropped = "telltale.replay.client_spans_dropped" // on the server span: client spans past the 128 kept
	AttrReplayEventsDropped      = "telltale.replay.events_dropped"       // on the server span: events past the 128 kept (the oldest go)
	AttrReplayAttributesDropped  = "telltale.replay.attributes_dropped"   // on the server span: attributes past the 128 kept
	AttrReplayParent             = "telltale.replay.parent_span_id"       // on a client span made under a span of the application's, which is not replayed: that span's id; the client span is placed under the server span
)

// Values of error.type that telltale sets on client and server spans, in
// the words an on-call engineer searches for. Errors telltale cannot
// classify keep otelhttp's error.type (the Go type of the error, or the
// status code).
const (
	ErrorDeadlineExceeded       = "deadline_exceeded"        // the request context's deadline passed
	ErrorCanceled               = "canceled"                 // the request context was canceled, e.g. the client went away
	ErrorConnectionRefused      = "connection_refused"       // nothing listens: the upstream is down
	ErrorConnectionReset        = "connection_reset"         // the peer reset or closed the connection mid-exchange
	ErrorTimeoutAwaitingHeaders = "timeout_awaiting_headers" // connected, request sent, no response headers in time: a black hole
	ErrorDialTimeout            = "dial_timeout"             // the TCP connect did not finish in time
	ErrorTLSHandshakeTimeout    = "tls_handshake_timeout"    // the TLS handshake did not finish in time
	ErrorTLS                    = "tls_error"                // certificate or handshake failure
	ErrorDNS                    = "dns_error"                // the host name did not resolve
	ErrorMalformedResponse      = "malformed_response"       // the upstream did not speak HTTP
	ErrorTimeout                = "timeout"                  // another network timeout
	ErrorBodyLeaked             = "body_leaked"              // the response body leaked
	ErrorPanic                  = "panic"                    // the handler panicked
)

// Metrics, on the meter of package transport unless said otherwise.
const (
	MetricBodiesOpen      = "telltale.client.response.body.open"      // up-down counter: bodies handed to the application and not yet ended
	MetricBodiesLeaked    = "telltale.client.response.body.leaked"    // counter, by telltale.leak.reason and server.address
	MetricBytesDrained    = "telltale.client.response.body.drained"   // counter of bytes Close discarded
	MetricBodiesUntracked = "telltale.client.response.body.untracked" // counter of bodies past the tracking cap
	MetricUpstreamSlow    = "telltale.client.upstream.slow"           // counter, by telltale.upstream.slow.kind and server.address

	// On the meter of package sampling.
	MetricAnomalyTracesExported = "telltale.anomaly.traces.exported" // counter of unsampled traces exported for an anomaly, by telltale.anomaly.kind
	MetricAnomalyTracesDropped  = "telltale.anomaly.traces.dropped"  // counter of those over the budget, not exported, by telltale.anomaly.kind

	// On the meter of the server middleware.
	MetricClientCanceled = "telltale.server.request.canceled" // counter of requests whose client went away before their deadline: a deliberate cancellation, not an anomaly; by http.route
)

// AttrAnomalyKind is the kind of anomaly on the sampler's metrics: leak,
// upstream_failed, upstream_slow, 5xx, panic, deadline, caller_gave_up,
// slow, orphan or reported.
const AttrAnomalyKind = "telltale.anomaly.kind"

// The runtime/pprof labels the middleware puts on a handler's goroutine; the
// goroutines it starts inherit them, and CPU and goroutine profiles show
// them (go tool pprof -tagfocus).
const (
	LabelRoute   = "http.route" // the Echo route template
	LabelTraceID = "trace_id"   // the server span's trace id
)
