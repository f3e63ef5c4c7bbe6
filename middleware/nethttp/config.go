package nethttp

import (
	"fmt"
	"net/http"
)

// neverSkip is the default Skipper.
func neverSkip(*http.Request) bool { return false }

// wrapErr prefixes an error of the server core with the package name.
func wrapErr(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("nethttp: %w", err)
}

// learntRoute is the route of a request once its handler has returned:
// the pattern a mux below set on handedOn, the request handed on, or else
// routeFunc's answer, if any. RouteFunc reads a router that keeps its
// route elsewhere (chi's RouteContext), filled in only once it has routed.
func learntRoute(handedOn *http.Request, routeFunc func(*http.Request) string) string {
	if handedOn.Pattern != "" || routeFunc == nil {
		return handedOn.Pattern
	}
	return routeFunc(handedOn)
}
