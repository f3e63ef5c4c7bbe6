package compat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/telltale-go/telltale/compat/wrap"
)

// Config configures a [Harness].
type Config struct {
	// RootDir is the root of the telltale repository whose transport
	// package is tested; compat is its subdirectory.
	RootDir string
	// WorkDir receives the copies of the suites, their test binaries and
	// their go test -json output. It is emptied suite by suite. A stable
	// path lets Go's build cache serve the next run.
	WorkDir string
	// Suites are the suites to run.
	Suites []Suite
	// Timeout bounds each run of a test binary (go test -timeout).
	Timeout time.Duration
	// Reruns is how many times each test that regressed runs again alone,
	// plain and wrapped, to tell a regression from a flaky test.
	Reruns int
	// Race builds the test binaries with the race detector.
	Race bool
	// NoBackstop disables telltale's backstop deadline in wrapped runs.
	NoBackstop bool
	// Isolate runs the test binaries in a network namespace of their own
	// (unshare -n), where only the loopback interface exists, so that no
	// test can reach another host. Where unshare fails, the binaries run
	// unisolated, with a warning.
	Isolate bool
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// A Harness runs suites plain and wrapped and compares the runs.
type Harness struct {
	cfg       Config
	rootDir   string
	compatDir string
	goroot    string
	goRelease string // go env GOVERSION
	test2json string // the binary of go tool test2json
	goVersion string // of compat/go.mod
	isolate   bool
}

// New checks the configuration and the machine's Go.
func New(ctx context.Context, cfg Config) (*Harness, error) {
	root, err := filepath.Abs(cfg.RootDir)
	if err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	h := &Harness{cfg: cfg, rootDir: root, compatDir: filepath.Join(root, "compat")}
	out, err := h.goCmd(ctx, h.compatDir, "env", "GOROOT", "GOVERSION")
	if err != nil {
		return nil, err
	}
	env := strings.Fields(string(out))
	if len(env) != 2 {
		return nil, fmt.Errorf("compat: go env GOROOT GOVERSION printed %q", out)
	}
	h.goroot, h.goRelease = env[0], env[1]
	// test2json is built on demand (into the build cache) by go tool.
	if out, err = h.goCmd(ctx, h.compatDir, "tool", "-n", "test2json"); err != nil {
		return nil, err
	}
	h.test2json = strings.TrimSpace(string(out))
	out, err = h.goCmd(ctx, h.compatDir, "mod", "edit", "-json")
	if err != nil {
		return nil, err
	}
	var mod struct{ Go string }
	if err := json.Unmarshal(out, &mod); err != nil {
		return nil, fmt.Errorf("compat: go mod edit -json: %w", err)
	}
	h.goVersion = mod.Go
	if cfg.Isolate {
		if out, err := exec.CommandContext(ctx, "unshare", append(isolation, "true")...).CombinedOutput(); err != nil {
			fmt.Fprintf(cfg.Log, "warning: cannot isolate the tests (unshare -n, ip link set lo up: %v %s): they run in the machine's network namespace\n", err, bytes.TrimSpace(out))
		} else {
			h.isolate = true
		}
	}
	return h, nil
}

// Isolated reports whether the test binaries run in a network namespace of
// their own.
func (h *Harness) Isolated() bool { return h.isolate }

// isolation are the arguments of unshare that run a command in a new
// network namespace whose loopback interface is up (it starts down).
var isolation = []string{"-n", "sh", "-c", `ip link set lo up && exec "$@"`, "sh"}

// A SuiteReport is the outcome of one suite.
type SuiteReport struct {
	Suite          Suite
	Version        string // of the suite's module, or of Go
	Plain, Wrapped *Result
	Comparison     Comparison
	// CopyCheck lists, for a standard library suite, the tests whose
	// outcome differs between the original package and the plain copy:
	// it should be empty, or the copy is not the package it claims to be.
	CopyCheck []string
	Err       error // the suite could not be run
	Duration  time.Duration
}

// Run runs every configured suite.
func (h *Harness) Run(ctx context.Context) []SuiteReport {
	var reports []SuiteReport
	for _, s := range h.cfg.Suites {
		start := time.Now()
		r := h.runSuite(ctx, s)
		r.Duration = time.Since(start)
		fmt.Fprintf(h.cfg.Log, "%s: done in %s\n", s.Name, r.Duration.Round(time.Second))
		reports = append(reports, r)
	}
	return reports
}

func (h *Harness) runSuite(ctx context.Context, s Suite) SuiteReport {
	rep := SuiteReport{Suite: s}
	dir := filepath.Join(h.cfg.WorkDir, s.Name)
	if err := os.RemoveAll(dir); err != nil { // the last run's files, its mark included
		rep.Err = err
		return rep
	}
	bins := map[string]string{}
	trees := map[string]tree{}
	for _, variant := range []string{"plain", "wrapped"} {
		fmt.Fprintf(h.cfg.Log, "%s: laying out and building the %s copy\n", s.Name, variant)
		t, err := h.layout(ctx, s, filepath.Join(dir, variant), variant == "wrapped")
		if err != nil {
			rep.Err = err
			return rep
		}
		bin := filepath.Join(dir, variant+".test")
		if err := h.build(ctx, t.modDir, t.importPath, bin); err != nil {
			rep.Err = fmt.Errorf("%s: building the %s copy: %w", s.Name, variant, err)
			return rep
		}
		bins[variant], trees[variant] = bin, t
	}
	rep.Version = trees["plain"].version
	// Isolated, the two runs go side by side: the suites mostly wait
	// (retry back-offs, timeouts), and a test that fails only because of
	// the company is run again alone before it counts. Unisolated, they
	// would share the machine's ports (retryablehttp listens on a fixed
	// one), so they take turns.
	skip := skipPattern(s.Skip)
	fmt.Fprintf(h.cfg.Log, "%s: running plain and wrapped\n", s.Name)
	var (
		wg                sync.WaitGroup
		plainErr, wrapErr error
	)
	mark := filepath.Join(dir, "wrapped.mark")
	runs := []func(){
		func() {
			rep.Plain, plainErr = h.runTests(ctx, bins["plain"], trees["plain"], filepath.Join(dir, "plain.json"), "", skip, false)
		},
		func() {
			rep.Wrapped, wrapErr = h.runTests(ctx, bins["wrapped"], trees["wrapped"], filepath.Join(dir, "wrapped.json"), "", skip, true, wrap.MarkEnv+"="+mark)
		},
	}
	for _, run := range runs {
		if h.isolate {
			wg.Go(run)
		} else {
			run()
		}
	}
	wg.Wait()
	if err := errors.Join(plainErr, wrapErr); err != nil {
		rep.Err = err
		return rep
	}
	if _, err := os.Stat(mark); err != nil {
		rep.Err = fmt.Errorf("%s: the wrapped run never created a telltale transport: the patches no longer reach the package's requests", s.Name)
		return rep
	}
	rep.Comparison = Compare(rep.Plain, rep.Wrapped)
	if err := h.rerun(ctx, s, &rep, bins, trees); err != nil {
		rep.Err = err
		return rep
	}
	if s.Std != "" {
		var err error
		if rep.CopyCheck, err = h.checkCopy(ctx, s, dir, trees["plain"], rep.Plain); err != nil {
			rep.Err = err
		}
	}
	return rep
}

// rerun runs each top-level test that regressed again alone, plain and
// wrapped, Reruns times, and records how its regressed tests fared.
func (h *Harness) rerun(ctx context.Context, s Suite, rep *SuiteReport, bins map[string]string, trees map[string]tree) error {
	if h.cfg.Reruns <= 0 || len(rep.Comparison.Regressions) == 0 {
		return nil
	}
	var tops []string
	for _, d := range rep.Comparison.Regressions {
		tops = append(tops, topLevel(d.Test))
	}
	slices.Sort(tops)
	tops = slices.Compact(tops)
	dir := filepath.Join(h.cfg.WorkDir, s.Name)
	for _, top := range tops {
		fmt.Fprintf(h.cfg.Log, "%s: running %s again alone, %d times each way\n", s.Name, top, h.cfg.Reruns)
		for i := range h.cfg.Reruns {
			for _, variant := range []string{"plain", "wrapped"} {
				out := filepath.Join(dir, fmt.Sprintf("rerun-%s-%d-%s.json", top, i, variant))
				res, err := h.runTests(ctx, bins[variant], trees[variant], out, runPattern(top), "", variant == "wrapped")
				if err != nil {
					return err
				}
				for j := range rep.Comparison.Regressions {
					d := &rep.Comparison.Regressions[j]
					if topLevel(d.Test) != top {
						continue
					}
					if d.Rerun == nil {
						d.Rerun = &Rerun{Runs: h.cfg.Reruns}
					}
					if res.status(d.Test) == Pass {
						if variant == "plain" {
							d.Rerun.PlainPasses++
						} else {
							d.Rerun.WrappedPasses++
						}
					}
				}
			}
		}
	}
	return nil
}

// checkCopy runs the original standard library package's tests and lists
// the tests whose outcome differs from the plain copy's.
func (h *Harness) checkCopy(ctx context.Context, s Suite, dir string, plainTree tree, plain *Result) ([]string, error) {
	fmt.Fprintf(h.cfg.Log, "%s: running the original %s from GOROOT, to check the copy\n", s.Name, s.Std)
	bin := filepath.Join(dir, "original.test")
	if err := h.build(ctx, plainTree.modDir, s.Std, bin); err != nil {
		return nil, fmt.Errorf("%s: building the original: %w", s.Name, err)
	}
	orig := tree{pkgDir: filepath.Join(h.goroot, "src", filepath.FromSlash(s.Std)), importPath: s.Std}
	res, err := h.runTests(ctx, bin, orig, filepath.Join(dir, "original.json"), "", skipPattern(s.Skip), false)
	if err != nil {
		return nil, err
	}
	var diffs []string
	names := slices.Clone(res.Order)
	for _, n := range plain.Order {
		if res.Tests[n] == nil {
			names = append(names, n)
		}
	}
	for _, n := range names {
		if o, c := res.status(n), plain.status(n); o != c {
			diffs = append(diffs, fmt.Sprintf("%s: %s in the original, %s in the copy", n, o, c))
		}
	}
	return diffs, nil
}

// build compiles the test binary of pkg, in the module at modDir, to bin.
func (h *Harness) build(ctx context.Context, modDir, pkg, bin string) error {
	// -vet=off: the suites are run for their behaviour, and raising their
	// go directive to ours turns on vet checks their authors never ran.
	args := []string{"test", "-c", "-vet=off", "-o", bin}
	if h.cfg.Race {
		args = append(args, "-race")
	}
	_, err := h.goCmd(ctx, modDir, append(args, pkg)...)
	return err
}

// runTests runs a test binary under test2json, in the package's directory
// (and network namespace, when isolated), with env added to its
// environment, writes the events to jsonOut and parses them.
func (h *Harness) runTests(ctx context.Context, bin string, t tree, jsonOut, run, skip string, wrapped bool, env ...string) (*Result, error) {
	args := []string{"-t", "-p", t.importPath}
	if h.isolate {
		args = append(append(args, "unshare"), isolation...)
	}
	args = append(args, bin, "-test.v=test2json", "-test.paniconexit0", "-test.count=1",
		"-test.timeout="+h.cfg.Timeout.String())
	if run != "" {
		args = append(args, "-test.run="+run)
	}
	if skip != "" {
		args = append(args, "-test.skip="+skip)
	}
	// The binary's own -timeout panics first; this only stops a binary
	// that hangs past it.
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.test2json, args...)
	cmd.Dir = t.pkgDir
	ownGroup(cmd)
	cmd.Env = append(os.Environ(), env...)
	if wrapped && h.cfg.NoBackstop {
		cmd.Env = append(cmd.Env, wrap.NoBackstopEnv+"=1")
	}
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return nil, fmt.Errorf("compat: running %s: %w", bin, err)
	}
	if werr := os.WriteFile(jsonOut, stdout.Bytes(), 0o644); werr != nil {
		return nil, werr
	}
	res, perr := ParseEvents(&stdout)
	if perr != nil {
		return nil, perr
	}
	if stderr.Len() > 0 {
		res.Output = append(res.Output, strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")...)
	}
	if err != nil && res.Status == Pass {
		res.Status = Fail
	}
	return res, nil
}

// goCmd runs the go command in dir and returns its standard output. The
// environment makes the run independent of the caller's: no workspace, no
// toolchain switch, go.mod and go.sum of the copies completed as needed.
func (h *Harness) goCmd(ctx context.Context, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOTOOLCHAIN=local", "GOFLAGS="+os.Getenv("GOFLAGS")+" -mod=mod")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("go %s (in %s): %w\n%s", strings.Join(args, " "), dir, err, stderr.Bytes())
	}
	return out, nil
}
