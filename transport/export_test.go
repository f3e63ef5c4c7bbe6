package transport

import "runtime"

// CaptureShort captures the stack of its caller as RoundTrip does, and
// returns how many program counters it kept.
func CaptureShort(t *Transport) int {
	var rec record
	t.capture(&rec)
	return rec.npcs
}

// CaptureWhole captures the stack of its caller walked whole to
// callerDepth, as RoundTrip did before it captured a short stack first.
//
//go:noinline
func CaptureWhole() int {
	var pcs [callerDepth]uintptr
	return runtime.Callers(2, pcs[:])
}
