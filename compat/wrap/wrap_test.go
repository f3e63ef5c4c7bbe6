package wrap_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/telltale-go/telltale/compat/wrap"
	"github.com/telltale-go/telltale/transport"
)

type funcTransport func(*http.Request) (*http.Response, error)

func (f funcTransport) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestTransportWrapsEachBaseOnce(t *testing.T) {
	base := &http.Transport{}
	w := wrap.Transport(base)
	if _, ok := w.(*transport.Transport); !ok {
		t.Fatalf("Transport(base) is a %T, want *transport.Transport", w)
	}
	if wrap.Transport(base) != w {
		t.Error("the same base got two wrappers: two connection pools where the suite has one")
	}
	if wrap.Transport(w) != w {
		t.Error("a wrapper was wrapped again")
	}
	if wrap.Transport(nil) != wrap.Transport(http.DefaultTransport) {
		t.Error("nil is not http.DefaultTransport, as it is for http.Client")
	}
}

func TestTransportTakesBasesThatCannotBeMapKeys(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }))
	defer srv.Close()
	base := funcTransport(http.DefaultTransport.RoundTrip)
	c := wrap.Client(&http.Client{Transport: base})
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); string(b) != "hello" {
		t.Errorf("body %q", b)
	}
}

func TestClientLeavesTheClientsTransportAlone(t *testing.T) {
	base := &http.Transport{}
	orig := &http.Client{Transport: base, CheckRedirect: func(*http.Request, []*http.Request) error { return nil }}
	c := wrap.Client(orig)
	if orig.Transport != base {
		t.Error("the suite's client lost its transport")
	}
	if c.Transport != wrap.Transport(base) || c.CheckRedirect == nil {
		t.Errorf("the copy: %+v", c)
	}
}
