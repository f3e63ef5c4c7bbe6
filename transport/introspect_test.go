package transport_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/telltale-go/telltale/transport"
)

// openBodies opens n bodies on a test double and returns them.
func openBodies(t *testing.T, tr *transport.Transport, n int) []io.Closer {
	t.Helper()
	c := tr.Client()
	bodies := make([]io.Closer, 0, n)
	for range n {
		bodies = append(bodies, get(t, c, context.Background(), "http://double.test/").Body)
	}
	return bodies
}

// OpenBodies lists the oldest open bodies first, at most the number asked
// for, with their call sites; what it costs depends on how many it lists,
// not on how many are open: an operator may open the inspector in the
// middle of a leak storm.
func TestOpenBodiesCostIsBoundedByWhatItShows(t *testing.T) {
	double := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader("x")), Request: r}, nil
	})
	e := newEnv(t, double)
	first := get(t, e.client, context.Background(), "http://double.test/first")
	time.Sleep(time.Millisecond)
	bodies := openBodies(t, e.tr, 1000)
	list := e.tr.OpenBodies(10)
	if len(list) != 10 {
		t.Fatalf("OpenBodies(10) = %d bodies", len(list))
	}
	if !strings.HasSuffix(list[0].URL, "/first") || list[0].CallSite.File == "" {
		t.Errorf("the oldest open body is %+v, want /first with its call site", list[0])
	}
	for i := 1; i < len(list); i++ {
		if list[i].Opened.Before(list[i-1].Opened) {
			t.Fatal("not oldest first")
		}
	}
	small := testing.AllocsPerRun(20, func() { e.tr.OpenBodies(10) })
	bodies = append(bodies, openBodies(t, e.tr, 9000)...)
	large := testing.AllocsPerRun(20, func() { e.tr.OpenBodies(10) })
	if large > small*1.1+5 {
		t.Errorf("OpenBodies(10) allocates %.0f times with 1 000 bodies open and %.0f with 10 000: it grows with them", small, large)
	}
	if n := len(e.tr.OpenBodies(0)); n != 10001 {
		t.Errorf("OpenBodies(0) = %d bodies, want all 10001", n)
	}
	_ = first.Body.Close()
	for _, b := range bodies {
		_ = b.Close()
	}
}
