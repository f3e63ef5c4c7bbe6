package server

import (
	"net"
	"net/http"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// otelFacts are what the server span of an unsampled request needs to be
// replayed with the attributes otelhttp would have recorded on it: a few
// strings of the request, kept instead of the request (a goroutine
// monitor holds them for as long as it remembers the request), and the
// sizes otelhttp measured. attributes writes them as otelhttp's
// RequestTraceAttrs and ResponseTraceAttrs do, in their order; the
// differential test (a request exported sampled, then replayed) keeps them
// in step with otelhttp.
type otelFacts struct {
	method, path, host, hostPort, remote, userAgent, forwardedFor, proto, pattern string
	tls                                                                           bool
	requestBody, responseBody                                                     int64
}

// keep notes what r, otelhttp's copy of the request, carries; serverName
// is TraceConfig.ServerName.
func (f *otelFacts) keep(r *http.Request, serverName string) {
	f.method, f.remote, f.userAgent, f.proto, f.pattern = r.Method, r.RemoteAddr, r.UserAgent(), r.Proto, r.Pattern
	f.host, f.hostPort = serverName, r.Host
	if f.host == "" {
		f.host = r.Host
	}
	if r.URL != nil {
		f.path = r.URL.Path
	}
	f.forwardedFor, _, _ = strings.Cut(r.Header.Get("X-Forwarded-For"), ",")
	f.tls = r.TLS != nil
}

// attributes are otelhttp's server attributes of the request answered
// status; answered is false when the handler panicked or aborted, and
// otelhttp recorded no response attributes.
func (f *otelFacts) attributes(status int, aborted bool) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, 16)
	host, port := splitHostPort(f.host)
	if port < 0 {
		_, port = splitHostPort(f.hostPort)
	}
	scheme := "http"
	if f.tls {
		scheme = "https"
	}
	method, original := methodAttributes(f.method)
	attrs = append(attrs, semconv.ServerAddress(host), method, semconv.URLScheme(scheme))
	if p := requiredPort(f.tls, port); p > 0 {
		attrs = append(attrs, semconv.ServerPort(p))
	}
	if original.Valid() {
		attrs = append(attrs, original)
	}
	peer, peerPort := splitHostPort(f.remote)
	if peer != "" {
		attrs = append(attrs, semconv.NetworkPeerAddress(peer))
		if peerPort > 0 {
			attrs = append(attrs, semconv.NetworkPeerPort(peerPort))
		}
	}
	if f.userAgent != "" {
		attrs = append(attrs, semconv.UserAgentOriginal(f.userAgent))
	}
	if client := f.forwardedFor; client != "" {
		attrs = append(attrs, semconv.ClientAddress(client))
	} else if peer != "" {
		attrs = append(attrs, semconv.ClientAddress(peer))
	}
	if f.path != "" {
		attrs = append(attrs, semconv.URLPath(f.path))
	}
	name, version, _ := strings.Cut(f.proto, "/")
	if name = strings.ToLower(name); name != "" && name != "http" {
		attrs = append(attrs, semconv.NetworkProtocolName(name))
	}
	if version != "" {
		attrs = append(attrs, semconv.NetworkProtocolVersion(version))
	}
	if route := routePath(f.pattern); route != "" && strings.Contains(f.pattern, "/") {
		attrs = append(attrs, semconv.HTTPRoute(route))
	}
	if aborted {
		return attrs
	}
	if f.requestBody > 0 {
		attrs = append(attrs, semconv.HTTPRequestBodySize(int(f.requestBody)))
	}
	if f.responseBody > 0 {
		attrs = append(attrs, semconv.HTTPResponseBodySize(int(f.responseBody)))
	}
	if status > 0 {
		attrs = append(attrs, semconv.HTTPResponseStatusCode(status))
	}
	return attrs
}

// methodAttributes names the method as otelhttp does: a known method as
// it is, another as _OTHER with the original kept aside.
func methodAttributes(m string) (attribute.KeyValue, attribute.KeyValue) {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return semconv.HTTPRequestMethodKey.String(m), attribute.KeyValue{}
	}
	original := semconv.HTTPRequestMethodOriginal(m)
	switch u := strings.ToUpper(m); u {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return semconv.HTTPRequestMethodKey.String(u), original
	}
	return semconv.HTTPRequestMethodOther, original
}

// requiredPort is the port worth recording: not the scheme's default.
func requiredPort(https bool, port int) int {
	if port <= 0 || https && port == 443 || !https && port == 80 {
		return -1
	}
	return port
}

// splitHostPort splits host[:port] as otelhttp does: port -1 when absent
// or invalid.
func splitHostPort(hostport string) (string, int) {
	port := -1
	if strings.HasPrefix(hostport, "[") {
		end := strings.LastIndexByte(hostport, ']')
		if end < 0 {
			return "", port
		}
		if strings.LastIndexByte(hostport[end:], ':') < 0 {
			return hostport[1:end], port
		}
	} else if !strings.Contains(hostport, ":") {
		return hostport, port
	}
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return host, port
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return host, port
	}
	return host, int(n)
}
