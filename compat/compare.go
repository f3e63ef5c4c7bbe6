package compat

import (
	"regexp"
	"slices"
	"strings"
)

// A Diff is a test whose outcome differs between the plain and the wrapped
// run.
type Diff struct {
	Test           string
	Plain, Wrapped Status
	// Output is what the test printed in the run it did not pass; for a
	// test that never finished, it ends with what the binary printed
	// outside any test (the panic or the timeout's goroutine dump).
	Output []string
	// ByChildren is set when the test failed only because subtests of its
	// own did, which are Diffs too.
	ByChildren bool
	// Rerun tells how the test fared when run again alone, if it was.
	Rerun *Rerun
}

// A Rerun counts the passes of a test run again alone, plain and wrapped.
type Rerun struct {
	Runs                       int
	PlainPasses, WrappedPasses int
}

// Confirmed reports whether a regression held when the test ran alone:
// plain passed every time and wrapped never did. A test with no rerun is
// taken as confirmed.
func (d Diff) Confirmed() bool {
	if d.Rerun == nil {
		return true
	}
	return d.Rerun.PlainPasses == d.Rerun.Runs && d.Rerun.WrappedPasses == 0
}

// A Comparison is the difference between a suite's two runs.
type Comparison struct {
	// Regressions passed plain and did not pass wrapped.
	Regressions []Diff
	// Reverse did not pass plain and passed wrapped.
	Reverse []Diff
	// Tests counts the tests (subtests included) seen in either run.
	Tests int
}

// regressionCounts counts the regressions confirmed when run again alone
// and the others, leaving out the tests that failed only by their subtests.
func (c Comparison) regressionCounts() (confirmed, unconfirmed int) {
	for _, d := range c.Regressions {
		switch {
		case d.ByChildren:
		case d.Confirmed():
			confirmed++
		default:
			unconfirmed++
		}
	}
	return confirmed, unconfirmed
}

// Compare compares a suite's plain run with its wrapped run.
func Compare(plain, wrapped *Result) Comparison {
	names := slices.Clone(plain.Order)
	for _, n := range wrapped.Order {
		if plain.Tests[n] == nil {
			names = append(names, n)
		}
	}
	c := Comparison{Tests: len(names)}
	for _, n := range names {
		p, w := plain.status(n), wrapped.status(n)
		switch {
		case p == Pass && w != Pass:
			c.Regressions = append(c.Regressions, Diff{Test: n, Plain: p, Wrapped: w, Output: outputOf(wrapped, n)})
		case w == Pass && p != Pass && p != Skipped:
			c.Reverse = append(c.Reverse, Diff{Test: n, Plain: p, Wrapped: w, Output: outputOf(plain, n)})
		}
	}
	markParents(c.Regressions)
	markParents(c.Reverse)
	return c
}

// outputOf is what test n printed in r, followed, if it did not finish,
// by what the binary printed outside any test.
func outputOf(r *Result, n string) []string {
	var out []string
	if t := r.Tests[n]; t != nil {
		out = slices.Clone(t.Output)
	}
	if s := r.status(n); s == Incomplete || s == Missing {
		out = append(out, r.Output...)
	}
	return out
}

// markParents sets ByChildren on the diffs whose subtests are diffs too.
func markParents(diffs []Diff) {
	for i := range diffs {
		prefix := diffs[i].Test + "/"
		for _, d := range diffs {
			if strings.HasPrefix(d.Test, prefix) {
				diffs[i].ByChildren = true
				break
			}
		}
	}
}

// topLevel returns the top-level test of a test or subtest name.
func topLevel(name string) string {
	top, _, _ := strings.Cut(name, "/")
	return top
}

// runPattern returns the -test.run pattern that selects exactly the
// top-level test name (with its subtests).
func runPattern(name string) string {
	return "^" + regexp.QuoteMeta(name) + "$"
}

// skipPattern returns the -test.skip pattern of the suite's skips, or "".
func skipPattern(skips []Skip) string {
	var alts []string
	for _, s := range skips {
		alts = append(alts, regexp.QuoteMeta(s.Test))
	}
	if len(alts) == 0 {
		return ""
	}
	return "^(" + strings.Join(alts, "|") + ")$"
}
