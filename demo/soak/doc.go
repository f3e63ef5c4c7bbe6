// Package soak holds the soak test of the guarded gateway: bounded load on
// loopback, with one upstream black-holed and one handler that leaks a body
// on every call, checking that goroutines, upstream connections and heap
// stay flat and that every leak is reported exactly once.
//
// It runs when TELLTALE_SOAK is set to a duration (make -C demo soak sets
// 30s); plain go test skips it.
package soak
