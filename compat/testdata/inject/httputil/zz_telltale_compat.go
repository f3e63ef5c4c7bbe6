package httputil

// Injected by telltale's compat harness into its wrapped copy of the
// package; reverseproxy.go is patched to send the upstream request through
// the transport returned here: ReverseProxy.Transport as the test set it, or
// http.DefaultTransport when it is nil.

import (
	"net/http"

	"github.com/telltale-go/telltale/compat/wrap"
)

func telltaleCompatTransport(rt http.RoundTripper) http.RoundTripper { return wrap.Transport(rt) }
