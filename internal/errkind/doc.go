// Package errkind names why an HTTP call failed, in the words an on-call
// engineer searches for (connection_refused, timeout_awaiting_headers, ...),
// for the error.type of client and server spans and for metrics.
//
// Go reports these failures in many shapes — *net.OpError, *url.Error,
// context errors, net/http's own messages — and the same shape can mean
// different things: net/http's response header timeout also matches
// context.DeadlineExceeded. The classification lives here, once, for the
// transport (client spans) and the middleware (server spans); the errors
// themselves are returned to callers unchanged.
package errkind
