package transport

import (
	"context"
	"net/http"
)

type longLivedKey struct{}

// LongLived returns a copy of ctx for requests whose response is meant to
// stay open for long — a stream of server-sent events, a large download.
// Such a request gets no backstop deadline ([WithTimeout]) and its body is
// never reported as too old ([WithMaxBodyAge]); it is still reported if the
// application drops it (unreachable), if it outlives its [Scope], or at
// [Transport.Close]. Upgraded connections (101 Switching Protocols, a
// WebSocket) need nothing: net/http stops watching the request's context
// once it hands the connection over, and they are never too old.
func LongLived(ctx context.Context) context.Context {
	return context.WithValue(ctx, longLivedKey{}, true)
}

// longLived reports whether the response to req is meant to stay open.
func longLived(req *http.Request) bool {
	on, _ := req.Context().Value(longLivedKey{}).(bool)
	return on
}
