package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"runtime"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Body states. A body leaves stateOpen exactly once, by a compare-and-swap,
// and whoever wins does the accounting: ends the span, updates the metrics,
// leaves the registry.
const (
	stateOpen    int32 = iota
	stateClosing       // Close is draining
	stateDone          // read to the end, failed, or closed
	stateLeaked        // reported as a leak
)

// ErrLeakRepaired is returned by Read on a body that telltale closed because
// it leaked (it was unreachable, its scope ended, it grew too old, or the
// Transport was closed): the code reading it is running after the request it
// belonged to. errors.Is recognises it.
var ErrLeakRepaired = errors.New("transport: response body was closed by telltale as leaked")

type recordKey struct{}

// A record is the bookkeeping of one outbound request and its response body.
// It serves as the context of the request as sent through otelhttp (saving a
// context allocation), and is what the registry and the scope hold: it never
// points to the body handed to the application, so that the body can become
// unreachable and be found by the garbage collector.
type record struct {
	context.Context
	t      *Transport
	start  time.Time
	method string
	url    *url.URL
	pcs    [callerDepth]uintptr
	npcs   int
	trace  httptrace.ClientTrace
	cancel context.CancelFunc // releases the backstop deadline, if any

	// Written by the request's goroutine before RoundTrip returns.
	span      trace.Span
	under     io.ReadCloser
	status    int
	headers   time.Time     // response headers received
	budget    time.Duration // time left before the deadline at send time
	hasBudget bool
	upgraded  bool // 101 Switching Protocols: a connection, not a body
	conn      connUse

	state       atomic.Int32
	bytesRead   atomic.Int64
	underClosed atomic.Bool
	repaired    atomic.Bool

	// Registry links, guarded by the shard's lock.
	shard      atomic.Pointer[shard]
	prev, next *record
}

// connUse is what httptrace said about the connection a request used.
type connUse struct {
	seen     bool
	reused   bool
	wasIdle  bool
	idle     time.Duration
	timings  connTimings
	measured bool
}

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

// hostname is the upstream's host name, without the port: the
// server.address of the semantic conventions.
func (r *record) hostname() string {
	if r.url == nil {
		return ""
	}
	return r.url.Hostname()
}

func (r *record) isOpen() bool { return r.state.Load() == stateOpen }

func (r *record) gotConn(info httptrace.GotConnInfo) {
	r.conn = connUse{seen: true, reused: info.Reused, wasIdle: info.WasIdle, idle: info.IdleTime}
	r.conn.timings, r.conn.measured = timingsOf(info.Conn, time.Now())
}

func (r *record) read(p []byte) (int, error) {
	if r.repaired.Load() {
		return 0, ErrLeakRepaired
	}
	n, err := r.under.Read(p)
	r.bytesRead.Add(int64(n))
	if err != nil {
		if r.repaired.Load() {
			return n, ErrLeakRepaired
		}
		if r.state.CompareAndSwap(stateOpen, stateDone) {
			if err == io.EOF {
				r.t.finish(r, finishEOF, 0, nil)
			} else {
				r.t.finish(r, finishReadError, 0, err)
			}
		}
	}
	return n, err
}

func (r *record) close() error {
	if r.state.CompareAndSwap(stateOpen, stateClosing) {
		drained, eof := r.drain()
		err := r.closeUnder()
		r.state.Store(stateDone)
		how := finishClosedEarly
		if eof {
			how = finishClosedDrained
		}
		r.t.finish(r, how, drained, nil)
		return err
	}
	return r.closeUnder()
}

// closeUnder closes the real body once.
func (r *record) closeUnder() error {
	if r.underClosed.CompareAndSwap(false, true) {
		return r.under.Close()
	}
	return nil
}

// drain reads what is left of the body, up to the drain limit and for at
// most the drain timeout, so that the connection can be reused. It reports
// how many bytes it discarded and whether it reached the end.
func (r *record) drain() (int64, bool) {
	limit := r.t.cfg.drainLimit
	if limit <= 0 || r.upgraded { // a connection, not a response: nothing to reuse

		return 0, false
	}
	if d := r.t.cfg.drainTimeout; d > 0 {
		// Closing the body unblocks the read in progress; the connection
		// is then dropped, which is what a stalled upstream deserves.
		stop := time.AfterFunc(d, func() { _ = r.closeUnder() })
		defer stop.Stop()
	}
	n, err := io.CopyN(io.Discard, r.under, limit)
	if err == io.EOF {
		return n, true
	}
	if err == nil { // exactly limit bytes so far: at the end only if nothing follows
		var one [1]byte
		m, err := r.under.Read(one[:])
		return n + int64(m), m == 0 && err == io.EOF
	}
	return n, false
}

// unreachable runs when the garbage collector finds the application's body
// unreachable. It must not refer to the body itself.
func (r *record) unreachable() {
	if r.isOpen() {
		// Reporting logs, exports and closes a connection: not on the
		// runtime's cleanup goroutine, shared by the whole process.
		go r.t.reportLeak(r, LeakUnreachable)
	}
}

// info describes the record for reports and introspection. It symbolizes the
// call site: not for the request path.
func (r *record) info(now time.Time) BodyInfo {
	site, stack := r.t.cfg.symbolize(r.pcs[:r.npcs])
	bi := BodyInfo{
		Method:    r.method,
		URL:       RedactURL(r.url),
		Status:    r.status,
		CallSite:  site,
		Stack:     stack,
		Opened:    r.start,
		Age:       now.Sub(r.start),
		BytesRead: r.bytesRead.Load(),
	}
	if r.url != nil {
		bi.Host = r.url.Host
	}
	if r.span != nil {
		if sc := r.span.SpanContext(); sc.IsValid() {
			bi.TraceID, bi.SpanID = sc.TraceID().String(), sc.SpanID().String()
		}
	}
	return bi
}

// body is the response body handed to the application. It holds the copy of
// the response returned to the caller: net/http's read loop keeps its own
// *http.Response alive until the body is finished, so replacing the Body of
// that struct would keep the wrapper reachable and hide leaks from the
// garbage collector.
type body struct {
	resp    http.Response
	rec     *record
	cleanup runtime.Cleanup
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.rec.read(p)
	runtime.KeepAlive(b) // a body being read is not unreachable
	return n, err
}

// Close drains what is left of the body (up to the drain limit), closes it
// and ends the request's span. It is idempotent and safe to call from any
// goroutine, concurrently with Read.
func (b *body) Close() error {
	err := b.rec.close()
	b.cleanup.Stop()
	return err
}

// upgradedBody is the body of a 101 Switching Protocols response: the
// connection itself, writable.
type upgradedBody struct{ *body }

func (u upgradedBody) Write(p []byte) (int, error) {
	n, err := u.rec.under.(io.Writer).Write(p)
	runtime.KeepAlive(u.body)
	return n, err
}

// CloseWrite half-closes the connection, as net/http's 101 body does
// (httputil.ReverseProxy relies on it).
func (u upgradedBody) CloseWrite() error {
	if cw, ok := u.rec.under.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return fmt.Errorf("transport: CloseWrite: %w", http.ErrNotSupported)
}
