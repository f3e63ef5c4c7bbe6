// Package transport is telltale's outbound half: an http.RoundTripper that
// makes response-body leaks, failed calls and slow upstreams show up in the
// trace of the request that caused them, with the line of code responsible.
//
// Go HTTP clients fail quietly. A response body that is never closed, or
// closed before its end, keeps its connection out of the pool and the
// transport's goroutines alive; the client span otelhttp started for it never
// ends, so it is never exported, and the trace of the guilty request looks
// clean. A default client waits forever on an upstream that accepts
// connections and never answers.
//
// [New] wraps any RoundTripper (nil means [NewHardenedTransport], Go's
// default transport with timeouts and pool sizes fit for a gateway). Every
// request is traced by otelhttp; telltale tracks its response body until it
// ends and drains it on close, so that the connection is reused. A body
// that leaks is found by the first of four checks — the garbage collector
// finds it unreachable, its [Scope] (the inbound request) ends, it grows
// older than [WithMaxBodyAge], the Transport is closed — and reported once:
// the client span ends with status Error and a leak event naming the call
// site, a metric counts it, a warning logs it, and the body is closed,
// freeing its connection, unless [WithReportOnly] is set. Failed calls get
// an error.type in an on-call engineer's words, slow ones an event stamped
// when the threshold passed ([WithSlowThreshold]). A client span is named
// after the upstream it calls — "GET ads" for a Transport named ads
// ([WithName]), "GET host:port" otherwise. A healthy call's span is
// otelhttp's, with its URL redacted and the deadline budget it was sent
// with; the evidence — how the body was read and ended, the timings, the
// connection — is recorded once, when something went wrong, on the span
// marked telltale.anomaly. For a request the head sampler dropped, the
// call is kept with its inbound request and exported with it if the
// request turns out anomalous (see package sampling). The names are in
// package vocab.
//
// Whatever the caller can observe is what the base transport returned: the
// same errors (net/http's own values, not wrappers), status, headers, body
// bytes, trailers and upgraded connections.
//
// Quick start:
//
//	tr := transport.New(nil, transport.WithTracerProvider(tp))
//	defer tr.Close()
//	client := tr.Client()
//	resp, err := client.Do(req.WithContext(ctx))
//	if err != nil {
//		return err
//	}
//	defer resp.Body.Close()
//
// In tests, [VerifyNoOpenBodies] fails a test that leaves a body open, as
// goleak does for goroutines; [Transport.OpenBodies] lists open bodies with
// their call sites. URLs are recorded without credentials or query values,
// and no header value is recorded.
//
// The package imports net/http and OpenTelemetry only; the Echo middleware
// of package middleware builds on it.
package transport
