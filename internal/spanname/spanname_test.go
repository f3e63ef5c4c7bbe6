package spanname_test

import (
	"fmt"
	"testing"

	"github.com/telltale-go/telltale/internal/spanname"
)

func TestName(t *testing.T) {
	var c spanname.Cache
	for _, tc := range []struct{ method, target, want string }{
		{"GET", "/users/:id", "GET /users/:id"},
		{"get", "ads", "GET ads"},
		{"POST", "", "POST"},
		{"BREW", "127.0.0.1:8080", "HTTP 127.0.0.1:8080"},
		{"", "x", "HTTP x"},
	} {
		if got := c.Name(tc.method, tc.target); got != tc.want {
			t.Errorf("Name(%q, %q) = %q, want %q", tc.method, tc.target, got, tc.want)
		}
		if again := c.Name(tc.method, tc.target); again != tc.want {
			t.Errorf("cached Name(%q, %q) = %q", tc.method, tc.target, again)
		}
	}
}

// A client sending made-up methods or a service calling thousands of hosts
// cannot make the cache grow past its bound; names stay right past it.
func TestCacheIsBounded(t *testing.T) {
	var c spanname.Cache
	for i := range 10_000 {
		target := fmt.Sprintf("host-%d", i)
		if got := c.Name("GET", target); got != "GET "+target {
			t.Fatalf("Name = %q", got)
		}
	}
}

func BenchmarkCachedName(b *testing.B) {
	var c spanname.Cache
	b.ReportAllocs()
	for b.Loop() {
		_ = c.Name("GET", "ads")
	}
}
