package compat

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

// events builds go test -json output, one event per line.
func events(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

const plainRun = `{"Action":"start","Package":"p"}
{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"pass","Package":"p","Test":"TestA","Elapsed":0.1}
{"Action":"run","Package":"p","Test":"TestB"}
{"Action":"run","Package":"p","Test":"TestB/one"}
{"Action":"pass","Package":"p","Test":"TestB/one"}
{"Action":"run","Package":"p","Test":"TestB/two"}
{"Action":"pass","Package":"p","Test":"TestB/two"}
{"Action":"pass","Package":"p","Test":"TestB"}
{"Action":"run","Package":"p","Test":"TestC"}
{"Action":"fail","Package":"p","Test":"TestC"}
{"Action":"run","Package":"p","Test":"TestD"}
{"Action":"pass","Package":"p","Test":"TestD"}
{"Action":"fail","Package":"p"}`

// The wrapped run: TestA fails, TestB fails by its subtest two, TestC
// (failing plain) passes, and the binary times out in TestD.
const wrappedRun = `{"Action":"start","Package":"p"}
{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"output","Package":"p","Test":"TestA","Output":"    a_test.go:9: boom\n"}
{"Action":"fail","Package":"p","Test":"TestA","Elapsed":0.1}
{"Action":"run","Package":"p","Test":"TestB"}
{"Action":"run","Package":"p","Test":"TestB/one"}
{"Action":"pass","Package":"p","Test":"TestB/one"}
{"Action":"run","Package":"p","Test":"TestB/two"}
{"Action":"fail","Package":"p","Test":"TestB/two"}
{"Action":"fail","Package":"p","Test":"TestB"}
{"Action":"run","Package":"p","Test":"TestC"}
{"Action":"pass","Package":"p","Test":"TestC"}
{"Action":"run","Package":"p","Test":"TestD"}
{"Action":"output","Package":"p","Output":"panic: test timed out after 1s\n"}
{"Action":"fail","Package":"p"}`

func parse(t *testing.T, s string) *Result {
	t.Helper()
	r, err := ParseEvents(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestParseEventsRecordsEveryTestsOutcome(t *testing.T) {
	r := parse(t, wrappedRun)
	want := map[string]Status{"TestA": Fail, "TestB": Fail, "TestB/one": Pass, "TestB/two": Fail, "TestC": Pass, "TestD": Incomplete}
	for name, st := range want {
		if got := r.status(name); got != st {
			t.Errorf("%s: %s, want %s", name, got, st)
		}
	}
	if got := r.status("TestE"); got != Missing {
		t.Errorf("a test that never ran: %s, want %s", got, Missing)
	}
	if r.Status != Fail {
		t.Errorf("package status %s, want %s", r.Status, Fail)
	}
	if want := []string{"=== RUN   TestA", "    a_test.go:9: boom"}; !slices.Equal(r.Tests["TestA"].Output, want) {
		t.Errorf("TestA's output %q, want %q", r.Tests["TestA"].Output, want)
	}
	if want := []string{"panic: test timed out after 1s"}; !slices.Equal(r.Output, want) {
		t.Errorf("output outside tests %q, want %q", r.Output, want)
	}
}

func TestParseEventsOfABinaryThatDiedIsIncomplete(t *testing.T) {
	r := parse(t, events(`{"Action":"run","Package":"p","Test":"TestA"}`, "not json: killed"))
	if r.Status != Incomplete || r.status("TestA") != Incomplete {
		t.Errorf("package %s, TestA %s; want both %s", r.Status, r.status("TestA"), Incomplete)
	}
	if !slices.Equal(r.Output, []string{"not json: killed"}) {
		t.Errorf("output %q", r.Output)
	}
}

func TestCompareFindsRegressionsAndTheReverse(t *testing.T) {
	c := Compare(parse(t, plainRun), parse(t, wrappedRun))
	var regressions []string
	for _, d := range c.Regressions {
		regressions = append(regressions, d.Test)
	}
	if want := []string{"TestA", "TestB", "TestB/two", "TestD"}; !slices.Equal(regressions, want) {
		t.Fatalf("regressions %v, want %v", regressions, want)
	}
	if !c.Regressions[1].ByChildren || c.Regressions[2].ByChildren {
		t.Errorf("TestB fails by its subtest, TestB/two by itself: %+v", c.Regressions[1:3])
	}
	if got := c.Regressions[3].Output; !slices.Contains(got, "panic: test timed out after 1s") {
		t.Errorf("a test that never finished shows the binary's last words: %q", got)
	}
	if len(c.Reverse) != 1 || c.Reverse[0].Test != "TestC" {
		t.Errorf("reverse %+v, want TestC", c.Reverse)
	}
	if c.Tests != 6 {
		t.Errorf("%d tests, want 6", c.Tests)
	}
	if confirmed, unconfirmed := c.regressionCounts(); confirmed != 3 || unconfirmed != 0 {
		t.Errorf("counts %d, %d; want 3 (TestB counted by its subtest), 0", confirmed, unconfirmed)
	}
}

func TestARegressionIsConfirmedOnlyIfItHoldsWhenRunAlone(t *testing.T) {
	for _, tc := range []struct {
		rerun *Rerun
		want  bool
	}{
		{nil, true},
		{&Rerun{Runs: 2, PlainPasses: 2, WrappedPasses: 0}, true},
		{&Rerun{Runs: 2, PlainPasses: 2, WrappedPasses: 1}, false},
		{&Rerun{Runs: 2, PlainPasses: 1, WrappedPasses: 0}, false},
	} {
		if got := (Diff{Rerun: tc.rerun}).Confirmed(); got != tc.want {
			t.Errorf("%+v: confirmed %v, want %v", tc.rerun, got, tc.want)
		}
	}
}

func TestPatternsSelectExactlyTheNamedTests(t *testing.T) {
	run := regexp.MustCompile(runPattern("TestA.b"))
	if !run.MatchString("TestA.b") || run.MatchString("TestAxb") || run.MatchString("TestA.bc") {
		t.Errorf("run pattern %s", run)
	}
	skip := regexp.MustCompile(skipPattern([]Skip{{Test: "TestX"}, {Test: "TestY"}}))
	if !skip.MatchString("TestX") || !skip.MatchString("TestY") || skip.MatchString("TestXY") {
		t.Errorf("skip pattern %s", skip)
	}
	if skipPattern(nil) != "" {
		t.Error("no skips, no pattern")
	}
}
