package transport

import (
	"context"
	"net/http"
	"strings"
)

type longLivedKey struct{}

// LongLived returns a copy of ctx for requests whose response is meant to
// stay open for long — a stream of server-sent events, a WebSocket or
// another upgraded connection, a large download. Such a request gets no
// backstop deadline ([WithTimeout]) and its body is never reported as too
// old ([WithMaxBodyAge]); it is still reported if the application drops it
// (unreachable), if it outlives its [Scope], or at [Transport.Close].
// Requests asking for a protocol upgrade (Connection: Upgrade) are
// long-lived without it.
func LongLived(ctx context.Context) context.Context {
	return context.WithValue(ctx, longLivedKey{}, true)
}

// longLived reports whether the response to req is meant to stay open.
func longLived(req *http.Request) bool {
	if on, _ := req.Context().Value(longLivedKey{}).(bool); on {
		return true
	}
	for _, v := range req.Header["Connection"] {
		for token := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(token), "upgrade") {
				return true
			}
		}
	}
	return false
}
