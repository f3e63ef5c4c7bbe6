// Package compat is a harness that holds telltale's transport to its
// promise: whatever a caller can observe — responses, bodies, trailers,
// 101 upgrades, streaming, errors and their types — is what the plain base
// transport gives. telltale's own tests check what its authors thought of;
// this runs the test suites of widely used HTTP clients, and of
// net/http/httputil's ReverseProxy, which nobody here wrote.
//
// Each [Suite] runs twice, from copies made at run time (module sources
// come from the module cache, versions pinned in compat/go.mod; the
// standard library package from GOROOT): once as published, once with the
// files in testdata/inject added and a one-line [Patch] applied, so that
// every request the package sends goes through transport.New(base,
// transport.WithLogger(discard)) — see package wrap. A test that passes
// plain and fails wrapped is a regression; the harness runs it again alone
// to tell it from a flaky test, and fails when it holds.
//
// compat is a module of its own so that the suites and their dependencies
// never enter telltale's go.mod. Run it with `make compat` at the
// repository root, or `go run ./cmd/compat -h` here.
package compat
