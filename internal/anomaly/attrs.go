package anomaly

import (
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// The attributes a replayed span needs to look like the one otelhttp
// would have recorded, written as otelhttp writes them.

// MethodAttributes names the method as the semantic conventions do: known
// methods as they are, others as _OTHER with the original kept aside.
func MethodAttributes(m string) []attribute.KeyValue {
	if m == "" {
		m = http.MethodGet
	}
	switch u := strings.ToUpper(m); u {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		if u == m {
			return []attribute.KeyValue{semconv.HTTPRequestMethodKey.String(u)}
		}
		return []attribute.KeyValue{semconv.HTTPRequestMethodKey.String(u), semconv.HTTPRequestMethodOriginal(m)}
	}
	return []attribute.KeyValue{semconv.HTTPRequestMethodOther, semconv.HTTPRequestMethodOriginal(m)}
}

// NonDefaultPort reports whether port is worth recording as server.port:
// it is not the scheme's default.
func NonDefaultPort(scheme string, port int) bool {
	return port > 0 && !(scheme == "http" && port == 80) && !(scheme == "https" && port == 443)
}

// ProtocolVersion turns "HTTP/1.1" into "1.1", as network.protocol.version
// wants it.
func ProtocolVersion(proto string) string {
	_, v, ok := strings.Cut(proto, "/")
	if !ok {
		return ""
	}
	if v == "2.0" {
		return "2"
	}
	return v
}
