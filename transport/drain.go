package transport

import (
	"io"
	"time"
)

// drain reads what is left of the body, up to the drain limit and for at
// most the drain timeout, so that the connection goes back to the pool
// instead of being closed. It reports how many bytes it discarded and
// whether it reached the end.
func (r *record) drain() (int64, bool) {
	limit := r.t.cfg.drainLimit
	if limit <= 0 || r.upgraded { // a connection, not a response: nothing to reuse
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
