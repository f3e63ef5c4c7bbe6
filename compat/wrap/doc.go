// Package wrap is the only code the compat harness puts into the suites it
// runs: the files it injects into a third-party package call [Transport] or
// [Client] where the package builds or uses its transport, so that every
// request the package's tests make goes through telltale's
// transport.New(base, transport.WithLogger(discard)). Keeping that here, in
// one place, keeps the injected files down to a few lines and the patches to
// their packages down to one call each.
//
// It uses nothing of telltale but transport.New, transport.WithLogger and
// transport.WithTimeout, so that the harness keeps working while the
// package behind them is rewritten.
package wrap
