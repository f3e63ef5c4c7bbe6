package transport

import (
	"net/http"
	"time"

	"github.com/telltale-go/telltale/internal/timeoutheader"
)

// withTimeoutHeader returns r, or a copy of it, whose Connect-Timeout-Ms
// never says more than the time left before the deadline: with
// propagation on, the header tells the upstream how long the caller will
// wait, so that a Connect server, or a server behind telltale's Deadline
// middleware, stops working when the caller stops; and a value already on
// the request — set by the caller, or copied from the inbound request by a
// proxy (httputil.ReverseProxy, Echo's Proxy) — is lowered to the time
// left when it is longer, or malformed, propagation on or off: an upstream
// must not work a minute for a caller that gives up in 200 ms.
func withTimeoutHeader(r *http.Request, left time.Duration, hasDeadline, propagate bool) *http.Request {
	if !hasDeadline {
		return r
	}
	set := r.Header.Get(timeoutheader.Connect)
	if set == "" && !propagate {
		return r
	}
	if set != "" {
		if d, err := timeoutheader.Parse(set); err == nil && d <= left {
			return r // the caller's, shorter than the time left
		}
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
