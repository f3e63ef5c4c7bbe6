package transport_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/telltale-go/telltale/transport"
	"github.com/telltale-go/telltale/vocab"
)

// A client span says which upstream it called: "GET ads" for a transport
// named ads, which also sets peer.service; "GET <host>" — the URL's host,
// never its path or query — otherwise; or what WithSpanNameFormatter says.
// A replayed span is named as a sampled one.
func TestClientSpansAreNamedByUpstream(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway) // anomalous, so that an unsampled call is replayed
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	cases := []struct {
		name, peer string
		opts       []transport.Option
		method     string
	}{
		{"GET " + u.Host, "", nil, http.MethodGet},
		{"GET ads", "ads", []transport.Option{transport.WithName("ads")}, http.MethodGet},
		{"POST ads", "ads", []transport.Option{transport.WithName("ads")}, http.MethodPost},
		{"HTTP ads", "ads", []transport.Option{transport.WithName("ads")}, "BREW"},
		{"ads /items", "ads", []transport.Option{transport.WithName("ads"), transport.WithSpanNameFormatter(func(name string, r *http.Request) string {
			return name + " " + r.URL.Path
		})}, http.MethodGet},
	}
	for _, c := range cases {
		for _, sampled := range []bool{true, false} {
			w := newTwin(t, sampled, c.opts...)
			req, _ := http.NewRequestWithContext(w.ctx, c.method, srv.URL+"/items?id=7", nil)
			resp, err := w.tr.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			drainClose(resp)
			s := w.clientSpan(t)
			if s.Name() != c.name {
				t.Errorf("sampled %v: span %q, want %q", sampled, s.Name(), c.name)
			}
			peer, ok := attrOf(s.Attributes(), vocab.AttrPeerService)
			if c.peer == "" && ok || c.peer != "" && peer.AsString() != c.peer {
				t.Errorf("sampled %v, %q: %s = %q, want %q", sampled, c.name, vocab.AttrPeerService, peer.AsString(), c.peer)
			}
		}
	}
}

// Span names are cached, but a name never carries what differs from one
// request to the next.
func TestSpanNameHasNoPathOrQuery(t *testing.T) {
	srv := payloadServer(t, 10)
	e := newEnv(t, nil)
	for _, p := range []string{"/a?x=1", "/b/c?y=2"} {
		drainClose(get(t, e.client, context.Background(), srv.URL+p))
	}
	u, _ := url.Parse(srv.URL)
	for _, s := range e.waitEnded(t, 2) {
		if s.Name() != "GET "+u.Host {
			t.Errorf("span %q, want %q", s.Name(), "GET "+u.Host)
		}
	}
}
