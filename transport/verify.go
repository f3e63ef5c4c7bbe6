package transport

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// TestingT is the part of *testing.T that [VerifyNoOpenBodies] uses.
type TestingT interface {
	Helper()
	Errorf(format string, args ...any)
}

// ErrOpenBodies is wrapped by the error of [FindOpenBodies].
var ErrOpenBodies = errors.New("transport: response bodies left open")

// FindOpenBodies returns an error wrapping [ErrOpenBodies] that lists, with
// their call sites and stacks, the bodies of tr still open — after waiting up
// to wait for bodies being closed by other goroutines to settle. It returns
// nil when none is open.
func FindOpenBodies(tr *Transport, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		open := tr.OpenBodies(0)
		if len(open) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			slices.SortStableFunc(open, byCallSite)
			var b strings.Builder
			fmt.Fprintf(&b, "%d response bodies left open:", len(open))
			for _, o := range open {
				fmt.Fprintf(&b, "\n  %s %s (status %d, %d bytes read, open %s)\n    opened at %s\n%s",
					o.Method, o.URL, o.Status, o.BytesRead, o.Age.Round(time.Millisecond), o.CallSite, indent(o.Stack))
			}
			return fmt.Errorf("%w: %s", ErrOpenBodies, b.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// VerifyNoOpenBodies fails the test if any body of tr is still open, naming
// the line of code that opened each. Bodies closed by other goroutines get
// up to one second to settle. Use it in a defer or t.Cleanup, like
// goleak.VerifyNone.
func VerifyNoOpenBodies(t TestingT, tr *Transport) {
	t.Helper()
	if err := FindOpenBodies(tr, time.Second); err != nil {
		t.Errorf("%v", err)
	}
}

func indent(stack string) string {
	if stack == "" {
		return ""
	}
	lines := strings.Split(strings.TrimRight(stack, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "      " + strings.TrimLeft(l, "\t")
	}
	return strings.Join(lines, "\n") + "\n"
}
