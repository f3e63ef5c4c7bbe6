package appcode

import "testing"

func TestInPackage(t *testing.T) {
	for _, c := range []struct {
		fn, pkg string
		want    bool
	}{
		{"example.com/a.F", "example.com/a", true},
		{"example.com/a.(*T).M", "example.com/a", true},
		{"example.com/a/b.F", "example.com/a", true},
		{"example.com/ab.F", "example.com/a", false},
		{"example.com/a", "example.com/a", false},
		{"main.main", "main", true},
		{"maintenance.F", "main", false},
		{"", "main", false},
	} {
		if got := InPackage(c.fn, c.pkg); got != c.want {
			t.Errorf("InPackage(%q, %q) = %v, want %v", c.fn, c.pkg, got, c.want)
		}
	}
}

// A test binary's main module is the module under test.
func TestMainModule(t *testing.T) {
	if got := MainModule(); got != "github.com/telltale-go/telltale" {
		t.Errorf("MainModule() = %q", got)
	}
}
