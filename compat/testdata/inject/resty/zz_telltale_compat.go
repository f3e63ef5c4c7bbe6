package resty

// Injected by telltale's compat harness into its wrapped copy of the
// package; client.go is patched to send every request through the client
// returned here instead of c.httpClient. The client's own Transport field is
// left alone, because Client.Transport and the TLS and proxy setters it
// serves want an *http.Transport there.

import (
	"net/http"

	"github.com/telltale-go/telltale/compat/wrap"
)

func telltaleCompatClient(c *http.Client) *http.Client { return wrap.Client(c) }
