// Package server is telltale's server side, whatever the framework: the
// request deadline (header, route, function, default, clamp, propagation,
// and the outcome — 504, 499, overrun), the server span named by the route
// template with its status, error and anomalies, the replay of unsampled
// requests that turn out anomalous, the per-request leak scope and
// goroutine labels, the goroutine monitor and the inspector.
//
// The adapters — package middleware for Echo v4, middleware/echov5 for
// Echo v5, middleware/nethttp for plain net/http — hold only what their
// framework makes different: how a middleware is called, where the route
// template and the handler's error come from, and how an error becomes an
// answer. Everything they share lives here, once.
package server
