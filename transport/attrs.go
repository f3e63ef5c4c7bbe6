package transport

// Names telltale records on client spans. Durations are float64
// milliseconds, readable as they are in Jaeger.
const (
	// EventBodyLeaked is the span event of a leaked response body.
	EventBodyLeaked = "http.response.body.leaked"
	// EventUpstreamSlow is the span event of a call past a slow threshold.
	EventUpstreamSlow = "http.upstream.slow"

	AttrBodyReadBytes    = "telltale.response.body.read_bytes"    // bytes the application read
	AttrBodyDrainedBytes = "telltale.response.body.drained_bytes" // bytes Close discarded to reuse the connection
	AttrBodyEOF          = "telltale.response.body.eof"           // the body was read (or drained) to its end
	AttrBodyOpen         = "telltale.response.body.open_ms"       // how long the body stayed open after the headers
	AttrBodyEnd          = "telltale.response.body.end"           // how the body ended: eof, closed, closed_drained, read_error, no_body, leaked
	AttrTTFB             = "telltale.ttfb_ms"                     // time until the response headers were read
	AttrDeadlineBudget   = "telltale.deadline.remaining_ms"       // time left before the context deadline when the request was sent

	AttrConnReused  = "telltale.conn.reused"   // the connection came from the pool
	AttrConnWasIdle = "telltale.conn.was_idle" // it had been idle in the pool
	AttrConnIdle    = "telltale.conn.idle_ms"  // for how long
	AttrConnDNS     = "telltale.conn.dns_ms"   // new connections of the hardened transport: DNS time
	AttrConnConnect = "telltale.conn.connect_ms"
	AttrConnTLS     = "telltale.conn.tls_ms"

	AttrSlow          = "telltale.upstream.slow"      // the call crossed a slow threshold
	AttrSlowKind      = "telltale.upstream.slow.kind" // on the event: ttfb or total
	AttrSlowThreshold = "telltale.upstream.slow.threshold_ms"
	AttrSlowObserved  = "telltale.upstream.slow.observed_ms"

	AttrLeakReason   = "telltale.leak.reason"   // unreachable, out_of_scope, too_old or open_at_close
	AttrLeakRepaired = "telltale.leak.repaired" // telltale closed the body
	AttrLeakAge      = "telltale.leak.age_ms"   // how long the body had been open

	// The call site, with OpenTelemetry's code.* attribute names.
	AttrCodeFunction   = "code.function.name"
	AttrCodeFile       = "code.file.path"
	AttrCodeLine       = "code.line.number"
	AttrCodeStacktrace = "code.stacktrace"
)

// Values of error.type that telltale sets itself, besides the [ErrorKind]s.
const (
	// ErrorTypeBodyLeaked is the error.type of a span whose body leaked.
	ErrorTypeBodyLeaked = "body_leaked"
)
