// Command capture writes the goroutine profiles that package goroutines'
// tests parse. They are real profiles of this program, written by
// runtime/pprof with debug=1, so that the tests follow the format the
// runtime writes rather than the format we believe it writes. Run it again
// after a Go release that may change the format, from the repository root:
//
//	go run -trimpath ./internal/goroutines/testdata/capture -dir internal/goroutines/testdata
//
// and update the tests' expectations (line numbers are this file's;
// -trimpath makes the paths the same on every machine).
//
// It writes:
//
//   - nolabels.txt: the program before any goroutine is labelled, so the
//     profile has no "# labels:" line at all.
//   - mixed.txt: unlabelled goroutines, and labelled ones each carrying a
//     "case" label that names what it exercises: labels holding quotes,
//     commas, colons, braces, control characters and non-ASCII text; a
//     stack deeper than the profile keeps; a wait inlined into its caller;
//     a closure blocked in a select; two goroutines sharing stack and
//     labels.
//   - truncated.txt: mixed.txt cut in the middle of its last frame line, as
//     a profile written into a full buffer would be.
//   - malformed.txt: mixed.txt with damaged lines, each in the group of one
//     case: a count that is not a number ("bad-count"), a labels line
//     without its closing brace ("open-labels"), a frame line without its
//     file:line ("no-line"), and a line that is none of the profile's
//     kinds after the group "shared".
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"
)

func main() {
	dir := flag.String("dir", ".", "where to write the profiles")
	flag.Parse()
	if err := capture(*dir); err != nil {
		log.Fatal(err)
	}
}

func capture(dir string) error {
	release := make(chan struct{})
	defer close(release)

	for range 3 {
		go parked(release)
	}
	settle()
	nolabels := profile()

	labelled := func(labels []string, f func()) {
		pprof.Do(context.Background(), pprof.Labels(labels...), func(context.Context) { go f() })
	}
	labelled([]string{"case", "odd-labels", `quote"d`, `a, b: "c" {d}`, "tab\tand\x00nul", "ünïcødé ✓", "trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"}, func() { parked(release) })
	labelled([]string{"case", "deep"}, func() { deep(200, release) })
	labelled([]string{"case", "inlined"}, func() { callsInlined(release) })
	labelled([]string{"case", "select"}, func() {
		select {
		case <-release:
		case <-time.After(time.Hour):
		}
	})
	for range 2 {
		labelled([]string{"case", "shared", "http.route", "/users/:id"}, func() { parked(release) })
	}
	for _, c := range []string{"bad-count", "open-labels", "no-line"} {
		labelled([]string{"case", c}, func() { parked(release) })
	}
	settle()
	mixed := profile()

	lastFrame := strings.LastIndex(mixed, "\n#\t")
	truncated := mixed[:lastFrame+(len(mixed)-lastFrame)/3]

	malformed, err := damage(mixed)
	if err != nil {
		return err
	}
	for name, text := range map[string]string{
		"nolabels.txt":  nolabels,
		"mixed.txt":     mixed,
		"truncated.txt": truncated,
		"malformed.txt": malformed,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// damage breaks one line in the groups of four cases, as described in the
// package comment.
func damage(profile string) (string, error) {
	groups := strings.SplitAfter(profile, "\n\n")
	edits := map[string]func(lines []string) []string{
		`"case":"bad-count"`: func(l []string) []string {
			_, rest, _ := strings.Cut(l[0], " @ ")
			l[0] = "x @ " + rest
			return l
		},
		`"case":"open-labels"`: func(l []string) []string {
			l[1] = strings.TrimSuffix(l[1], "}")
			return l
		},
		`"case":"no-line"`: func(l []string) []string {
			i := strings.LastIndexByte(l[2], '\t')
			l[2] = l[2][:i]
			return l
		},
		`"case":"shared"`: func(l []string) []string {
			return append(l, "this line is not part of the format")
		},
	}
	done := 0
	for i, g := range groups {
		for match, edit := range edits {
			if strings.Contains(g, "# labels: ") && strings.Contains(g, match) {
				lines := strings.Split(strings.TrimRight(g, "\n"), "\n")
				groups[i] = strings.Join(edit(lines), "\n") + "\n\n"
				done++
			}
		}
	}
	if done != len(edits) {
		return "", fmt.Errorf("capture: %d of %d groups to damage found", done, len(edits))
	}
	return strings.Join(groups, ""), nil
}

// parked is a goroutine waiting for the end of the capture.
func parked(release <-chan struct{}) { <-release }

// deep waits at the bottom of n calls: deeper than the 128 frames the
// runtime keeps of a goroutine's stack in a profile.
func deep(n int, release <-chan struct{}) {
	if n == 0 {
		<-release
		return
	}
	deep(n-1, release)
}

// callsInlined waits in inlinedWait, which the compiler inlines into it:
// the profile then shows two frames at one program counter.
func callsInlined(release <-chan struct{}) {
	inlinedWait(release)
	fmt.Fprint(&bytes.Buffer{}, "not inlined itself")
}

func inlinedWait(release <-chan struct{}) { <-release }

// settle gives the goroutines just started time to block.
func settle() { time.Sleep(100 * time.Millisecond) }

func profile() string {
	var b bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&b, 1); err != nil {
		log.Fatal(err)
	}
	return b.String()
}
