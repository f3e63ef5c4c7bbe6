package middleware

// Names telltale's middleware records on server spans. Durations are float64
// milliseconds, as in package transport.
const (
	// AttrLeaks is the number of response bodies the request left open,
	// set on the server span when it is not zero. Each leak also gets a
	// [transport.EventBodyLeaked] event.
	AttrLeaks = "telltale.leaks"

	AttrDeadlineTimeout = "telltale.deadline.timeout_ms" // the deadline given to the request, from its start
	AttrDeadlineSource  = "telltale.deadline.source"     // where it came from: a DeadlineSource
	AttrDeadlineClamped = "telltale.deadline.clamped"    // the requested timeout was longer than MaxTimeout
	AttrDeadlineOverrun = "telltale.deadline.overrun_ms" // how long the handler ran past its deadline
	AttrDeadlineHit     = "telltale.deadline.exceeded"   // the request was answered with DeadlineConfig.StatusCode
	AttrClientGone      = "telltale.client_gone"         // the client went away before the handler finished

	// EventTimeoutHeaderInvalid is recorded on the server span when the
	// request carried a [transport.TimeoutHeader] that could not be used;
	// its attribute AttrTimeoutHeaderError says why.
	EventTimeoutHeaderInvalid = "telltale.deadline.header_invalid"
	AttrTimeoutHeaderError    = "telltale.deadline.header_error" // why the header was ignored, naming the value (truncated)

	AttrGoroutineCount    = "telltale.goroutine.count"                // goroutines in an orphaned group (same request, same stack)
	AttrGoroutineRequest  = "telltale.goroutine.request"              // the request's id, as in the telltale.request pprof label
	AttrGoroutineEndedAgo = "telltale.goroutine.request_ended_ago_ms" // how long ago that request ended, when known
	AttrHTTPRoute         = "http.route"
)

// The runtime/pprof labels [Leaks] puts on the handler's goroutine. The
// goroutines the handler starts inherit them, and they show in CPU and
// goroutine profiles (go tool pprof -tagfocus).
const (
	LabelRoute   = "http.route"       // the Echo route template
	LabelTraceID = "trace_id"         // the server span's trace id, when the request is traced
	LabelRequest = "telltale.request" // identifies the request to its GoroutineMonitor
	LabelMonitor = "telltale.monitor" // identifies the GoroutineMonitor
)
