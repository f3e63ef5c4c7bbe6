package transport_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/telltale-go/telltale/transport"
)

// VerifyNoOpenBodies fails a test that leaves a body open, naming the line
// that made the request and no query value; it passes once the body is
// closed.
func TestVerifyNoOpenBodiesNamesTheCallSite(t *testing.T) {
	srv := payloadServer(t, 10)
	e := newEnv(t, nil)
	resp := get(t, e.client, context.Background(), srv.URL+"/a?key=hidden")
	ft := &fakeT{}
	transport.VerifyNoOpenBodies(ft, e.tr)
	// get is the helper that made the request: its line is the call site.
	if !strings.Contains(ft.msg, "main_test.go:") || !strings.Contains(ft.msg, "1 response bodies left open") {
		t.Errorf("VerifyNoOpenBodies message does not name the call site:\n%s", ft.msg)
	}
	if strings.Contains(ft.msg, "hidden") {
		t.Errorf("message leaks a query value:\n%s", ft.msg)
	}
	drainClose(resp)
	ft = &fakeT{}
	transport.VerifyNoOpenBodies(ft, e.tr)
	if ft.msg != "" {
		t.Errorf("after Close: %s", ft.msg)
	}
}

type fakeT struct{ msg string }

func (f *fakeT) Helper()                           {}
func (f *fakeT) Errorf(format string, args ...any) { f.msg += fmt.Sprintf(format, args...) }
