// Package transport is telltale's outbound half: an http.RoundTripper that
// makes response-body leaks and slow upstreams show up in the trace of the
// request that caused them.
//
// Go HTTP clients fail quietly. A response body that is never closed, or
// closed before it was read to the end, keeps its connection out of the pool
// and the transport's goroutines alive; the client span otelhttp started for
// it never ends, so it is never exported, and the trace shows nothing. A
// default client waits forever on an upstream that accepts connections and
// never answers. These bugs are found weeks later, by hand.
//
// [New] wraps any RoundTripper (nil means [NewHardenedTransport], Go's
// default transport with timeouts and pool sizes fit for a gateway), and
// [NewClient] returns a ready client. Every request is traced by otelhttp;
// telltale adds to its client span:
//
//   - body accounting: bytes read, bytes drained, whether the body reached
//     its end, how long it stayed open, how it ended;
//   - the connection: reused or new, idle time, and for new connections of
//     the hardened transport the DNS, connect and TLS times; time to the
//     response headers and the deadline budget left at send time;
//   - leaks, found three ways — a body the garbage collector finds
//     unreachable, a body still open when its [Scope] (the inbound request)
//     ends, a body older than [WithMaxBodyAge] — each reported once: the
//     client span ends with status Error and an [EventBodyLeaked] event
//     naming the line of code that made the request; a metric counts it; one
//     slog warning logs it; and the body is closed, freeing its connection,
//     unless [WithReportOnly] is set;
//   - slow upstreams ([WithSlowThreshold]) and classified errors
//     (error.type: [KindDeadlineExceeded], [KindConnectionRefused],
//     [KindTimeoutAwaitingHeaders], ...).
//
// Closing a body drains what is left of it, up to a bound, so that the
// connection is reused. [Transport.OpenBodies] lists open bodies with their
// call sites, and [VerifyNoOpenBodies] fails a test that leaves one open.
// URLs are recorded without credentials or query values, and no header value
// is recorded.
//
// Quick start:
//
//	client := transport.NewClient(transport.WithTracerProvider(tp))
//	resp, err := client.Do(req.WithContext(ctx))
//	if err != nil {
//		return err
//	}
//	defer resp.Body.Close()
//
// The package imports net/http and OpenTelemetry only; the Echo middleware in
// package middleware builds on it.
package transport
