package transport

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/internal/anomaly"
)

// A record is the bookkeeping of one outbound request and its response
// body. It is the context of the request as sent through otelhttp (which
// saves a context allocation), and it is what the registry and the scope
// hold: it never points to the body handed to the application, so that the
// body can become unreachable and be found by the garbage collector.
type record struct {
	context.Context // the request's context, as the caller gave it

	t      *Transport
	req    *http.Request // the caller's request: read, never changed
	sent   http.Request  // its copy that carries the record as its context, in the same allocation
	start  time.Time
	pcs    [callerDepth]uintptr
	npcs   int
	cancel context.CancelFunc // releases the backstop deadline, if any

	// Written by the request's goroutine before RoundTrip returns.
	name      string           // the client span's name
	otel      otelSpan         // the client span as otelhttp holds it
	span      trace.Span       // the client span itself
	recording bool             // the span records: telltale writes the evidence on it
	ownSpan   bool             // the span is the call's own, not its parent's (as a no-op tracer's is)
	parentID  trace.SpanID     // the span the call was made under
	replay    trace.Tracer     // the head sampler dropped the span: it is replayed with this tracer
	request   *anomaly.Request // the inbound request the call was made for, if any
	forwarded *http.Request    // the request the base transport was given
	orig      *http.Response   // the base transport's response, into which net/http writes trailers
	under     io.ReadCloser    // its body
	status    int
	err       error         // the call's error, when it got no response
	errKind   string        // its error.type, when telltale classifies it
	failedAt  time.Time     // when it failed
	headers   time.Time     // when the response headers arrived
	budget    time.Duration // time left before the deadline at send time
	hasBudget bool
	upgraded  bool // 101 Switching Protocols, or CONNECT: a connection, not a body

	// What otelhttp recorded on a span the head sampler dropped, kept as it
	// gave it, for a replay.
	otelRequest     []attribute.KeyValue
	otelResponse    []attribute.KeyValue
	otelCode        codes.Code
	otelDescription string

	dial atomic.Pointer[dialTimings] // set by the hardened dialer, from the dialing goroutine

	state       atomic.Int32
	ended       atomic.Bool // the call's span was ended (or handed to its request): once
	bytesRead   atomic.Int64
	underClosed atomic.Bool
	repaired    atomic.Bool

	// Registry links, guarded by the shard's lock.
	shard      atomic.Pointer[shard]
	prev, next *record
}

// Body states. A body leaves stateOpen exactly once, by a compare-and-swap,
// and whoever wins does the accounting: ends the span, updates the metrics,
// leaves the registry.
const (
	stateOpen    int32 = iota
	stateClosing       // Close is draining
	stateDone          // read to the end, failed, or closed
	stateLeaked        // reported as a leak
)

type recordKey struct{}

// Value makes the record the context that carries itself.
func (r *record) Value(key any) any {
	if key == (recordKey{}) {
		return r
	}
	return r.Context.Value(key)
}

func recordFrom(ctx context.Context) *record {
	if r, ok := ctx.(*record); ok {
		return r
	}
	r, _ := ctx.Value(recordKey{}).(*record)
	return r
}

func (r *record) isOpen() bool { return r.state.Load() == stateOpen }

// traced reports whether anything records the call: its live span, a
// replay, or the request it was made for.
func (r *record) traced() bool { return r.recording || r.replay != nil || r.request != nil }

// release frees the backstop deadline's timer, once the exchange is over.
func (r *record) release() {
	if r.cancel != nil {
		r.cancel()
	}
}

// hostname is the upstream's host name without the port: the
// server.address of the semantic conventions.
func (r *record) hostname() string {
	if r.req.URL == nil {
		return ""
	}
	return r.req.URL.Hostname()
}

// upstream names the upstream in anomaly signatures: the transport's
// name, or the URL's host.
func (r *record) upstream() string {
	if n := r.t.cfg.name; n != "" {
		return n
	}
	if r.req.URL == nil {
		return ""
	}
	return r.req.URL.Host
}
