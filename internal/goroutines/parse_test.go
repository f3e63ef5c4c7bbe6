package goroutines_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/telltale-go/telltale/internal/goroutines"
)

// captureFile is where testdata/capture's functions are, as -trimpath
// writes it.
const captureFile = "github.com/telltale-go/telltale/internal/goroutines/testdata/capture/main.go"

func frame(fn string, line int) goroutines.Frame {
	return goroutines.Frame{Function: "main." + fn, File: captureFile, Line: line}
}

// Groups of testdata/mixed.txt, by the value of their "case" label.
var (
	parkedAt = frame("parked", 143)
	shared   = goroutines.Group{
		Count:  2,
		Labels: map[string]string{"case": "shared", "http.route": "/users/:id"},
		Frames: []goroutines.Frame{parkedAt, frame("capture.func6", 75)},
	}
	oddLabels = goroutines.Group{
		Count: 1,
		Labels: map[string]string{
			"case":            "odd-labels",
			`quote"d`:         `a, b: "c" {d}`,
			"tab\tand\x00nul": "ünïcødé ✓",
			"trace_id":        "4bf92f3577b34da6a3ce929d0e0e4736",
		},
		Frames: []goroutines.Frame{parkedAt, frame("capture.func2", 65)},
	}
	inlined = goroutines.Group{
		Count:  1,
		Labels: map[string]string{"case": "inlined"},
		Frames: []goroutines.Frame{frame("inlinedWait", 162), frame("callsInlined", 158), frame("capture.func4", 67)},
	}
	// deep called itself 200 times: the profile keeps the innermost 128
	// program counters, three of them hidden runtime frames, and so lacks
	// the goroutine's own function.
	deep = goroutines.Group{
		Count:  1,
		Labels: map[string]string{"case": "deep"},
		Frames: append([]goroutines.Frame{frame("deep", 149)}, slices.Repeat([]goroutines.Frame{frame("deep", 152)}, 124)...),
	}
	selecting = goroutines.Group{
		Count:  1,
		Labels: map[string]string{"case": "select"},
		Frames: []goroutines.Frame{frame("capture.func5", 69)},
	}
	parkedCase = func(name string) goroutines.Group {
		return goroutines.Group{
			Count:  1,
			Labels: map[string]string{"case": name},
			Frames: []goroutines.Frame{parkedAt, frame("capture.func7", 78)},
		}
	}
	// unlabelled are the groups of mixed.txt without labels: three parked
	// goroutines, and the one that wrote the profile.
	unlabelled = []goroutines.Group{
		{Count: 3, Frames: []goroutines.Frame{parkedAt}},
		{Count: 1, Frames: []goroutines.Frame{
			{Function: "runtime/pprof.writeRuntimeProfile", File: "runtime/pprof/pprof.go", Line: 851},
			{Function: "runtime/pprof.writeGoroutine", File: "runtime/pprof/pprof.go", Line: 784},
			{Function: "runtime/pprof.(*Profile).WriteTo", File: "runtime/pprof/pprof.go", Line: 408},
			frame("profile", 169),
			frame("capture", 81),
			frame("main", 47),
			{Function: "runtime.main", File: "runtime/proc.go", Line: 290},
		}},
	}
)

func TestParse(t *testing.T) {
	missing := goroutines.Group{}
	for _, tc := range []struct {
		name string
		file string
		// want are the groups expected, by their "case" label, and the
		// unlabelled ones under "".
		want map[string]goroutines.Group
		// wantUnlabelled are the expected groups without labels.
		wantUnlabelled []goroutines.Group
	}{
		{
			name: "labelled and unlabelled goroutines, labels quoted, stacks deep and inlined",
			file: "mixed.txt",
			want: map[string]goroutines.Group{
				"shared": shared, "odd-labels": oddLabels, "inlined": inlined, "deep": deep, "select": selecting,
				"bad-count": parkedCase("bad-count"), "open-labels": parkedCase("open-labels"), "no-line": parkedCase("no-line"),
			},
			wantUnlabelled: unlabelled,
		},
		{
			name: "no labels line in the whole profile",
			file: "nolabels.txt",
			want: map[string]goroutines.Group{},
			wantUnlabelled: []goroutines.Group{
				{Count: 3, Frames: []goroutines.Frame{parkedAt}},
				{Count: 1, Frames: slices.Concat(unlabelled[1].Frames[:4], []goroutines.Frame{frame("capture", 60)}, unlabelled[1].Frames[5:])},
			},
		},
		{
			// The last frame line is cut: it is dropped, its group kept.
			name: "truncated in the last frame line",
			file: "truncated.txt",
			want: map[string]goroutines.Group{
				"shared": shared, "odd-labels": oddLabels, "inlined": inlined, "deep": deep,
				"select":    {Count: 1, Labels: selecting.Labels},
				"bad-count": parkedCase("bad-count"), "open-labels": parkedCase("open-labels"), "no-line": parkedCase("no-line"),
			},
			wantUnlabelled: unlabelled,
		},
		{
			// A group with an unreadable count is skipped, a frame line
			// without file:line dropped, a labels line without its closing
			// brace read, a line foreign to the format ignored.
			name: "malformed lines",
			file: "malformed.txt",
			want: map[string]goroutines.Group{
				"shared": shared, "odd-labels": oddLabels, "inlined": inlined, "deep": deep, "select": selecting,
				"bad-count":   missing,
				"open-labels": parkedCase("open-labels"),
				"no-line":     {Count: 1, Labels: map[string]string{"case": "no-line"}, Frames: []goroutines.Frame{frame("capture.func7", 78)}},
			},
			wantUnlabelled: unlabelled,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			groups := goroutines.Parse(readProfile(t, tc.file), nil)
			byCase := make(map[string]goroutines.Group)
			var unlabelledGot []goroutines.Group
			for _, g := range groups {
				if g.Labels == nil {
					unlabelledGot = append(unlabelledGot, g)
					continue
				}
				if _, dup := byCase[g.Labels["case"]]; dup {
					t.Errorf("two groups with case %q", g.Labels["case"])
				}
				byCase[g.Labels["case"]] = g
			}
			for name, want := range tc.want {
				got, ok := byCase[name]
				if want.Count == 0 {
					if ok {
						t.Errorf("case %s: got %+v, want no group", name, got)
					}
					continue
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("case %s:\n got %+v\nwant %+v", name, got, want)
				}
				delete(byCase, name)
			}
			for name, g := range byCase {
				t.Errorf("unexpected group %s: %+v", name, g)
			}
			if !reflect.DeepEqual(unlabelledGot, tc.wantUnlabelled) {
				t.Errorf("unlabelled groups:\n got %+v\nwant %+v", unlabelledGot, tc.wantUnlabelled)
			}
		})
	}
}

// keep sees every group's labels, nil for an unlabelled group, and only
// the groups it keeps are returned.
func TestParseKeep(t *testing.T) {
	var asked []string
	groups := goroutines.Parse(readProfile(t, "mixed.txt"), func(labels map[string]string) bool {
		if labels == nil {
			asked = append(asked, "(none)")
			return false
		}
		asked = append(asked, labels["case"])
		return labels["case"] == "inlined"
	})
	if !reflect.DeepEqual(groups, []goroutines.Group{inlined}) {
		t.Errorf("kept %+v, want the inlined group alone", groups)
	}
	slices.Sort(asked)
	want := []string{"(none)", "(none)", "bad-count", "deep", "inlined", "no-line", "odd-labels", "open-labels", "select", "shared"}
	if !slices.Equal(asked, want) {
		t.Errorf("keep asked about %q, want %q", asked, want)
	}
}

// Text that is not a profile gives no group and no panic.
func TestParseNotAProfile(t *testing.T) {
	for _, text := range []string{"", "\n\n", "goroutine profile: total 0\n", "@ @ @\n#\t\n# labels: {\n", "1 @\n# labels: {\"a\n#\tx\ty\tz:\n"} {
		for _, g := range goroutines.Parse([]byte(text), nil) {
			if len(g.Frames) != 0 || len(g.Labels) != 0 {
				t.Errorf("%q: group %+v", text, g)
			}
		}
	}
}

func readProfile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BenchmarkParse parses the profile of a process with 10 000 goroutines
// parked, 1 000 of them labelled each with its own request id, as
// GoroutineMonitor.Check does: keeping the labelled groups only.
//
//	go test -run '^$' -bench Parse -benchmem ./internal/goroutines
func BenchmarkParse(b *testing.B) {
	text := busyProfile(b, 10_000, 1_000)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		groups := goroutines.Parse(text, func(labels map[string]string) bool { return labels != nil })
		if len(groups) != 1_000 {
			b.Fatalf("%d groups", len(groups))
		}
	}
}

// busyProfile parks total goroutines, labelled of them with a request id of
// their own and a stack 20 calls deep, and returns the profile.
func busyProfile(b *testing.B, total, labelled int) []byte {
	release := make(chan struct{})
	var started, done sync.WaitGroup
	for i := range total {
		started.Add(1)
		done.Go(func() {
			if i >= labelled {
				started.Done()
				<-release
				return
			}
			pprof.Do(context.Background(), pprof.Labels("telltale.request", strconv.Itoa(i), "http.route", "/users/:id"), func(context.Context) {
				nested(20, func() { started.Done(); <-release })
			})
		})
	}
	started.Wait()
	b.Cleanup(func() { close(release); done.Wait() })
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 1); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

func nested(depth int, f func()) {
	if depth == 0 {
		f()
		return
	}
	nested(depth-1, f)
}
