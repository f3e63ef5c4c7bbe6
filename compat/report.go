package compat

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Regressions counts the confirmed and the unconfirmed regressions of the
// reports, and the suites that could not run.
func Regressions(reports []SuiteReport) (confirmed, flaky, broken int) {
	for _, r := range reports {
		if r.Err != nil {
			broken++
		}
		c, f := r.Comparison.regressionCounts()
		confirmed += c
		flaky += f
	}
	return confirmed, flaky, broken
}

// WriteReport prints the comparison of every suite to w, each test's
// output cut to maxLines lines.
func WriteReport(w io.Writer, reports []SuiteReport, maxLines int) {
	for _, r := range reports {
		writeSuite(w, r, maxLines)
	}
	fmt.Fprintln(w, "== summary")
	for _, r := range reports {
		fmt.Fprintf(w, "%-14s ", r.Suite.Name)
		if r.Err != nil {
			fmt.Fprintln(w, "could not run (see above)")
			continue
		}
		confirmed, flaky := r.Comparison.regressionCounts()
		fmt.Fprintf(w, "%4d tests  %3d pass plain and fail wrapped", r.Comparison.Tests, confirmed)
		if flaky > 0 {
			fmt.Fprintf(w, " (+%d not confirmed when run again alone)", flaky)
		}
		fmt.Fprintf(w, ", %d the reverse  (%s)\n", leaves(r.Comparison.Reverse), r.Duration.Round(time.Second))
	}
}

func leaves(diffs []Diff) int {
	n := 0
	for _, d := range diffs {
		if !d.ByChildren {
			n++
		}
	}
	return n
}

func writeSuite(w io.Writer, r SuiteReport, maxLines int) {
	s := r.Suite
	what := s.Module + " " + r.Version
	if s.Module == "" {
		what = s.Std + " of " + r.Version + " (copied from GOROOT)"
	}
	fmt.Fprintf(w, "== %s: %s\n", s.Name, what)
	if r.Err != nil {
		fmt.Fprintf(w, "   ERROR: %v\n\n", r.Err)
		return
	}
	fmt.Fprintf(w, "   plain:   %s\n", counts(r.Plain))
	fmt.Fprintf(w, "   wrapped: %s\n", counts(r.Wrapped))
	for _, sk := range s.Skip {
		fmt.Fprintf(w, "   skipped in both runs: %s (%s)\n", sk.Test, sk.Why)
	}
	if len(r.CopyCheck) > 0 {
		fmt.Fprintf(w, "   WARNING: the copy does not behave as the original %s:\n", s.Std)
		for _, l := range r.CopyCheck {
			fmt.Fprintf(w, "     %s\n", l)
		}
	} else if s.Std != "" {
		fmt.Fprintf(w, "   the plain copy passes and fails exactly the tests the original %s does\n", s.Std)
	}
	writeDiffs(w, "pass plain, fail wrapped", r.Comparison.Regressions, maxLines)
	writeDiffs(w, "fail plain, pass wrapped", r.Comparison.Reverse, maxLines)
	fmt.Fprintln(w)
}

func counts(r *Result) string {
	c := r.Counts()
	s := fmt.Sprintf("%d pass, %d fail, %d skip", c[Pass], c[Fail], c[Skipped])
	if c[Incomplete] > 0 {
		s += fmt.Sprintf(", %d never finished", c[Incomplete])
	}
	if r.Status == Incomplete {
		s += " — the test binary did not finish"
	}
	return s
}

func writeDiffs(w io.Writer, title string, diffs []Diff, maxLines int) {
	fmt.Fprintf(w, "   %s: %d\n", title, leaves(diffs))
	for _, d := range diffs {
		if d.ByChildren {
			continue
		}
		fmt.Fprintf(w, "   --- %s  [plain %s, wrapped %s", d.Test, d.Plain, d.Wrapped)
		if rr := d.Rerun; rr != nil {
			fmt.Fprintf(w, "; alone again: plain passed %d/%d, wrapped %d/%d", rr.PlainPasses, rr.Runs, rr.WrappedPasses, rr.Runs)
			if !d.Confirmed() {
				fmt.Fprint(w, " — NOT CONFIRMED")
			}
		}
		fmt.Fprintln(w, "]")
		out := d.Output
		if len(out) > maxLines {
			out = append(out[:maxLines:maxLines], fmt.Sprintf("... (%d more lines)", len(d.Output)-maxLines))
		}
		for _, l := range out {
			fmt.Fprintf(w, "       | %s\n", strings.TrimRight(l, " \t"))
		}
	}
}
