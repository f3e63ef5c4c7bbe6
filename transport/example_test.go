package transport_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/telltale-go/telltale/transport"
)

// A handler's request scope reports the body it forgot to close, with the
// line that made the request, and closes it.
func ExampleWithScope() {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"items":[]}`)
	}))
	defer upstream.Close()
	tr := transport.New(nil, transport.WithLogger(discardLogger()))
	defer tr.Close()
	client := tr.Client()

	ctx, scope := transport.WithScope(context.Background()) // the middleware does this per request
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, upstream.URL+"/items?token=secret", nil)
	resp, err := client.Do(req)
	if err != nil {
		panic(err)
	}
	_ = resp.StatusCode // ...and the body is never closed

	for _, leak := range scope.End() {
		fmt.Println(leak.Reason, leak.Repaired, leak.CallSite.Function)
		fmt.Println(leak.Method, leak.URL[len(upstream.URL):])
	}
	// Output:
	// out_of_scope true github.com/telltale-go/telltale/transport_test.ExampleWithScope
	// GET /items?token=REDACTED
}
