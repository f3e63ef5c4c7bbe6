package transport

import (
	"testing"
	"unsafe"
)

// TestTrackingFootprint prints the memory telltale holds per tracked open
// body, beyond what net/http and otelhttp hold: the record, the body wrapper
// (which embeds the response copy) and the cleanup's argument, and keeps it
// under 2 KiB. Run with -v for the figures.
func TestTrackingFootprint(t *testing.T) {
	rec, b := unsafe.Sizeof(record{}), unsafe.Sizeof(body{})
	const cleanupArg = 16 // runtime.AddCleanup boxes its argument in a 16-byte block
	total := rec + b + cleanupArg
	t.Logf("per tracked open body: record %d B + body %d B + cleanup argument %d B = %d B (before size-class rounding)", rec, b, cleanupArg, total)
	if total > 2048 {
		t.Errorf("tracking footprint grew to %d B per body", total)
	}
}
