package retryablehttp

// Injected by telltale's compat harness into its wrapped copy of the
// package; client.go is patched to pass the client it builds with
// cleanhttp.DefaultPooledClient() through here.

import (
	"net/http"

	"github.com/telltale-go/telltale/compat/wrap"
)

func telltaleCompatWrap(c *http.Client) *http.Client {
	c.Transport = wrap.Transport(c.Transport)
	return c
}
