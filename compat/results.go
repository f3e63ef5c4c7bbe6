package compat

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// A Status is how a test ended in one run.
type Status string

// Statuses. A test that started and never ended — the binary crashed, or
// hit its -timeout, while it ran — is incomplete; one that never started
// (the binary died before it) is missing.
const (
	Pass       Status = "pass"
	Fail       Status = "fail"
	Skipped    Status = "skip"
	Incomplete Status = "incomplete"
	Missing    Status = "missing"
)

// A TestResult is one test's, or subtest's, outcome in one run.
type TestResult struct {
	Name    string
	Status  Status
	Elapsed float64  // seconds
	Output  []string // the lines the test printed, go test -v's included
}

// A Result is one run of a suite's test binary.
type Result struct {
	Tests  map[string]*TestResult
	Order  []string // names in the order the tests started
	Output []string // lines printed outside any test: panics, timeouts, build errors
	Status Status   // the binary's own verdict (pass or fail), or incomplete
}

// event is a line of go test -json (cmd/test2json) output.
type event struct {
	Action  string
	Test    string
	Elapsed float64
	Output  string
}

// ParseEvents reads the go test -json output of one package's test run.
func ParseEvents(r io.Reader) (*Result, error) {
	res := &Result{Tests: map[string]*TestResult{}, Status: Incomplete}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			res.Output = append(res.Output, string(line))
			continue
		}
		var e event
		if err := json.Unmarshal(line, &e); err != nil {
			return nil, fmt.Errorf("compat: go test -json line %q: %w", line, err)
		}
		if e.Test == "" {
			switch e.Action {
			case "output", "build-output":
				res.Output = append(res.Output, strings.TrimSuffix(e.Output, "\n"))
			case "pass", "fail":
				res.Status = Status(e.Action)
			}
			continue
		}
		t := res.Tests[e.Test]
		if t == nil {
			t = &TestResult{Name: e.Test, Status: Incomplete}
			res.Tests[e.Test] = t
			res.Order = append(res.Order, e.Test)
		}
		switch e.Action {
		case "output":
			t.Output = append(t.Output, strings.TrimSuffix(e.Output, "\n"))
		case "pass", "fail", "skip":
			t.Status = Status(e.Action)
			t.Elapsed = e.Elapsed
		}
	}
	return res, sc.Err()
}

// status returns how test name ended in r.
func (r *Result) status(name string) Status {
	if t := r.Tests[name]; t != nil {
		return t.Status
	}
	return Missing
}

// Counts returns how many tests (subtests included) ended in each status.
func (r *Result) Counts() map[Status]int {
	c := map[Status]int{}
	for _, t := range r.Tests {
		c[t.Status]++
	}
	return c
}
