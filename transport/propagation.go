package transport

import (
	"net/http"
	"time"

	"github.com/telltale-go/telltale/internal/timeoutheader"
)

// withTimeoutHeader returns a copy of r that tells the upstream how long
// the caller will wait, in the Connect protocol's Connect-Timeout-Ms, so
// that a Connect server, or a server behind telltale's Deadline middleware,
// stops working when the caller stops waiting. A value the caller set
// itself is kept.
func withTimeoutHeader(r *http.Request, left time.Duration) *http.Request {
	if r.Header.Get(timeoutheader.Connect) != "" {
		return r
	}
	v := timeoutheader.Format(left)
	if v == "" {
		return r // too far away to say: no deadline, for the protocol
	}
	r = r.WithContext(r.Context()) // a shallow copy: the request is not ours to change
	r.Header = r.Header.Clone()
	r.Header.Set(timeoutheader.Connect, v)
	return r
}
