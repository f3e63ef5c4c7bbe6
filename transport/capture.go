package transport

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// shortDepth is how many program counters RoundTrip captures first. Past
// net/http's client (four or five frames) it reaches the application's own
// frame for a direct call and for most helpers; only when it does not is
// the stack walked to callerDepth. Walking costs about 25 ns a frame, and
// an Echo handler's stack is 25 to 30 frames deep.
const shortDepth = 12

// maxShortStacks bounds how many short stacks are remembered; a stack met
// once the bound is reached is walked to callerDepth.
const maxShortStacks = 1024

// shortStacks remembers, for each short stack seen, whether it holds the
// application's frame: a stack is symbolized once, not on every call.
// Readers take no lock: the map is replaced, never changed.
type shortStacks struct {
	known atomic.Pointer[map[[shortDepth]uintptr]bool]
	mu    sync.Mutex // serialises the writers
}

// capture records in rec the stack of the code that called RoundTrip, its
// own caller.
func (t *Transport) capture(rec *record) {
	const skip = 3 // runtime.Callers, capture, RoundTrip
	n := runtime.Callers(skip, rec.pcs[:shortDepth])
	if n < shortDepth || t.shortStacks.enough((*[shortDepth]uintptr)(rec.pcs[:shortDepth]), t.cfg.sites) {
		rec.npcs = n
		return
	}
	rec.npcs = runtime.Callers(skip, rec.pcs[:])
}

// enough reports whether the short stack pcs holds the application's frame,
// the call site, symbolizing it the first time it is seen.
func (s *shortStacks) enough(pcs *[shortDepth]uintptr, f siteFinder) bool {
	known := s.known.Load()
	if known != nil {
		if ok, seen := (*known)[*pcs]; seen {
			return ok
		}
		if len(*known) >= maxShortStacks {
			return false
		}
	}
	return s.learn(*pcs, f)
}

// learn symbolizes a short stack seen for the first time, and remembers
// whether it holds the application's frame.
func (s *shortStacks) learn(pcs [shortDepth]uintptr, f siteFinder) bool {
	ok := f.hasApp(pcs[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	known := s.known.Load()
	if known != nil && len(*known) >= maxShortStacks {
		return ok
	}
	next := make(map[[shortDepth]uintptr]bool, 1+lenOf(known))
	if known != nil {
		for k, v := range *known {
			next[k] = v
		}
	}
	next[pcs] = ok
	s.known.Store(&next)
	return ok
}

func lenOf(m *map[[shortDepth]uintptr]bool) int {
	if m == nil {
		return 0
	}
	return len(*m)
}
