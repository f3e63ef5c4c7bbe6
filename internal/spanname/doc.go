// Package spanname builds the names of telltale's spans — "GET
// /users/:id" for a server span, "GET ads" for a client span — once per
// method and target rather than once per request, and keeps what a client
// sends out of them: a method outside the standard ones is named "HTTP",
// as otelhttp does.
package spanname
