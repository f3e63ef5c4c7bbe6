// Package gateway holds the demo's API gateway in its two codebases, which
// serve the same two endpoints from the same three upstreams. The demo runs
// three gateways: the naive code twice, with and without its first fix,
// and the guarded code.
//
//   - [NewNaive] is the incident's original code: the default HTTP client,
//     a WaitGroup fan-out that waits for the slowest upstream, bodies
//     neither closed nor drained, traced with plain otelhttp. With
//     [Config.FirstFix] set, its fan-out is raced against time.After: the
//     incident's first fix.
//   - [NewGuarded] is the same handlers written with telltale: its Echo
//     middleware gives each request a deadline and a leak scope, one
//     transport per upstream, named after it, tracks every body, drains it
//     on close and tells the upstream how long the gateway will wait, and
//     the fan-out uses errgroup and answers with partial results when an
//     optional upstream fails. It runs on Echo v5 (telltale's
//     middleware/echov5) or Echo v4 (telltale's middleware), [Config.Echo]:
//     the handlers' logic is shared, each major has its glue in a file of
//     its own.
//
// Both codebases keep one bug on purpose: the count endpoint never closes
// the body of the response whose header it reads. In the naive gateways
// that call's span never reaches Jaeger; in the guarded one telltale
// reports it with its line.
package gateway
