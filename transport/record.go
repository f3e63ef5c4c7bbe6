package transport

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
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
	span       trace.Span
	recording  bool           // the span records: telltale writes the evidence on it
	replayable bool           // the head sampler dropped it: an anomaly is exported by replaying it
	forwarded  *http.Request  // the request the base transport was given
	orig       *http.Response // the base transport's response, into which net/http writes trailers
	under      io.ReadCloser  // its body
	status     int
	errKind    string        // error.type of a failed call
	headers    time.Time     // when the response headers arrived
	budget     time.Duration // time left before the deadline at send time
	hasBudget  bool
	upgraded   bool // 101 Switching Protocols, or CONNECT: a connection, not a body
	slowTTFB   bool // the headers came after the slow threshold

	dial atomic.Pointer[dialTimings] // set by the hardened dialer, from the dialing goroutine

	state       atomic.Int32
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
	r, _ := ctx.Value(recordKey{}).(*record)
	return r
}

func (r *record) isOpen() bool { return r.state.Load() == stateOpen }

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
