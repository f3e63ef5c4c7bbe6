package transport

import (
	"io"
	"strings"
	"time"
)

// drain reads what is left of the body, up to the drain limit and for at
// most the drain timeout, so that the connection goes back to the pool
// instead of being closed. It reports how many bytes it discarded and
// whether it reached the end.
func (r *record) drain() (int64, bool) {
	limit := r.t.cfg.drainLimit
	if limit <= 0 || r.upgraded || r.stream() {
		// A connection, or a stream that does not end: nothing to
		// reuse, and Close returns at once.
		return 0, false
	}
	// Closing the body unblocks a read in progress; the connection is then
	// dropped, which is what a stalled upstream deserves.
	stop := time.AfterFunc(r.t.cfg.drainTimeout, func() { _ = r.closeUnder() })
	defer stop.Stop()
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

// stream reports whether the body is a stream that goes on until one side
// closes it: the request was made LongLived, or the upstream answered with
// server-sent events.
func (r *record) stream() bool {
	if longLived(r.req) {
		return true
	}
	ct := r.orig.Header.Get("Content-Type")
	return len(ct) >= len("text/event-stream") && strings.EqualFold(ct[:len("text/event-stream")], "text/event-stream")
}
