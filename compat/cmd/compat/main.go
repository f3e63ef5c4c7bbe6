// Command compat runs third-party HTTP test suites plain and with their
// transports wrapped by telltale, and prints the tests whose outcome
// differs. It exits 1 when a test passes plain and fails wrapped (and still
// does when run again alone), 2 when a suite cannot run, 130 when
// interrupted.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/telltale-go/telltale/compat"
)

func main() {
	os.Exit(run())
}

func run() int {
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	var names []string
	for _, s := range compat.Suites() {
		names = append(names, s.Name)
	}
	var (
		root       = flag.String("root", "", "root of the telltale repository to test (default: the one holding the compat module of the current directory)")
		work       = flag.String("work", filepath.Join(cache, "telltale", "compat"), "directory for the copies, binaries and go test -json output (kept, for reading; a stable path lets the build cache serve the next run)")
		suites     = flag.String("suites", strings.Join(names, ","), "comma-separated suites to run")
		timeout    = flag.Duration("timeout", 5*time.Minute, "bound of each test binary run (go test -timeout)")
		reruns     = flag.Int("reruns", 2, "times each regressed test runs again alone, plain and wrapped")
		race       = flag.Bool("race", false, "build the test binaries with the race detector")
		noBackstop = flag.Bool("no-backstop", false, "disable telltale's backstop deadline in wrapped runs (transport.WithTimeout(0))")
		isolate    = flag.Bool("isolate", true, "run the tests in a network namespace with loopback only (unshare -n)")
		lines      = flag.Int("lines", 60, "lines of output shown per differing test")
	)
	flag.Parse()
	if *root == "" {
		r, err := repositoryRoot()
		if err != nil {
			fmt.Fprintln(os.Stderr, "compat:", err)
			return 2
		}
		*root = r
	}

	cfg := compat.Config{
		RootDir: *root, WorkDir: *work, Timeout: *timeout, Reruns: *reruns,
		Race: *race, NoBackstop: *noBackstop, Isolate: *isolate, Log: os.Stderr,
	}
	want := strings.Split(*suites, ",")
	for _, s := range compat.Suites() {
		if slices.Contains(want, s.Name) {
			cfg.Suites = append(cfg.Suites, s)
			want = slices.DeleteFunc(want, func(n string) bool { return n == s.Name })
		}
	}
	if len(want) > 0 && want[0] != "" {
		fmt.Fprintf(os.Stderr, "compat: unknown suites %v (known: %v)\n", want, names)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	h, err := compat.New(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "compat:", err)
		return 2
	}
	reports := h.Run(ctx)
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "compat: interrupted; no report")
		return 130
	}
	fmt.Printf("telltale compat: each suite run plain, then with every request through transport.New(base, transport.WithLogger(discard))")
	if *noBackstop {
		fmt.Print(" and transport.WithTimeout(0)")
	}
	fmt.Println()
	if h.Isolated() {
		fmt.Println("network: tests ran in a namespace of their own, loopback only (unshare -n)")
	} else {
		fmt.Println("network: tests ran in the machine's network namespace")
	}
	fmt.Printf("work directory (copies, binaries, go test -json): %s\n\n", *work)
	compat.WriteReport(os.Stdout, reports, *lines)
	fmt.Printf("total %s\n", time.Since(start).Round(time.Second))

	confirmed, _, broken := compat.Regressions(reports)
	switch {
	case broken > 0:
		return 2
	case confirmed > 0:
		return 1
	}
	return 0
}

// repositoryRoot is the parent of the compat module that holds the current
// directory.
func repositoryRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if filepath.Base(filepath.Dir(gomod)) != "compat" {
		return "", fmt.Errorf("run in telltale's compat module, or give -root (the current module is %q)", gomod)
	}
	return filepath.Dir(filepath.Dir(gomod)), nil
}
