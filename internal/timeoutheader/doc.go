// Package timeoutheader reads and writes a request's deadline as a header
// of milliseconds, so that a server stops working when its caller stops
// waiting.
//
// The header is the Connect protocol's Connect-Timeout-Ms: Connect servers
// and clients (connect-go, connect-es, ...) already speak it, so telltale's
// transport and middleware interoperate with them both ways. Envoy and
// Istio tell their upstreams the route timeout in
// X-Envoy-Expected-Rq-Timeout-Ms, with the same syntax. The transport writes
// and the middleware reads through this package, so both ends agree on one
// syntax: 1 to 10 ASCII digits, nothing else.
package timeoutheader
