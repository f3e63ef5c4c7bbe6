package compat

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestIsStdInternal(t *testing.T) {
	for imp, want := range map[string]bool{
		"net/http":                              false,
		"net/http/internal":                     true,
		"net/http/internal/ascii":               true,
		"internal/godebug":                      true,
		"vendor/golang.org/x/net/http/httpguts": true,
		"golang.org/x/net/http/httpguts":        false,
		"github.com/x/y/internal/z":             false, // a module's: its own rule applies
		"stdcopy/net/http/internal":             false, // already rewritten
	} {
		if got := isStdInternal(imp); got != want {
			t.Errorf("isStdInternal(%q) = %v, want %v", imp, got, want)
		}
	}
}

func TestRewriteImportsTouchesOnlyImportPaths(t *testing.T) {
	dir := t.TempDir()
	src := `package p

import (
	"net/http/internal"
	ascii "net/http/internal/ascii"
	"strings"
)

const s = "net/http/internal" // a string, not an import

var _ = strings.ToLower
`
	f := filepath.Join(dir, "p.go")
	if err := os.WriteFile(f, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	err := rewriteImports(dir, func(imp string) (string, bool) {
		if strings.HasPrefix(imp, "net/http/internal") {
			return "stdcopy/" + imp, true
		}
		return "", false
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.NewReplacer(`	"net/http/internal"`, `	"stdcopy/net/http/internal"`,
		`ascii "net/http/internal/ascii"`, `ascii "stdcopy/net/http/internal/ascii"`).Replace(src)
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	imports, err := importsOf(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"stdcopy/net/http/internal", "stdcopy/net/http/internal/ascii", "strings"}; !slices.Equal(imports, want) {
		t.Errorf("imports %v, want %v", imports, want)
	}
}

func TestApplyPatchWantsExactlyOneOccurrence(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "c.go")
	if err := os.WriteFile(f, []byte("a := f()\nb := g()\nc := g()\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := applyPatch(dir, Patch{File: "c.go", Old: "f()", New: "wrap(f())"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(f); string(got) != "a := wrap(f())\nb := g()\nc := g()\n" {
		t.Errorf("patched: %q", got)
	}
	if err := applyPatch(dir, Patch{File: "c.go", Old: "g()", New: "x"}); err == nil {
		t.Error("a patch whose text occurs twice applied")
	}
	if err := applyPatch(dir, Patch{File: "c.go", Old: "h()", New: "x"}); err == nil {
		t.Error("a patch whose text is gone applied")
	}
}

// The suites' patches are checked against the real packages by every run of
// the harness; this checks that every suite is complete.
func TestSuitesAreComplete(t *testing.T) {
	for _, s := range Suites() {
		if (s.Module == "") == (s.Std == "") {
			t.Errorf("%s: wants exactly one of Module and Std", s.Name)
		}
		if len(s.Patches) == 0 {
			t.Errorf("%s: no patch: its wrapped run would run plain", s.Name)
		}
		if _, err := embedded.ReadDir("testdata/inject/" + s.Inject); err != nil {
			t.Errorf("%s: %v", s.Name, err)
		}
	}
}
