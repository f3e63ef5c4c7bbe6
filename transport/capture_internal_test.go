package transport

import (
	"testing"
)

// The short stacks remembered are bounded: past the bound, a new one is
// not symbolized nor remembered, and its stack is walked whole.
func TestShortStacksAreBounded(t *testing.T) {
	var s shortStacks
	var f siteFinder
	for i := range maxShortStacks + 10 {
		var pcs [shortDepth]uintptr
		pcs[0] = uintptr(i + 1)
		if s.enough(&pcs, f) {
			t.Fatalf("stack %d: no frame of the application's, yet enough", i)
		}
	}
	if n := len(*s.known.Load()); n != maxShortStacks {
		t.Errorf("%d short stacks remembered, want the bound %d", n, maxShortStacks)
	}
}
