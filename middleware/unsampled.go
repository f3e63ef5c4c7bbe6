package middleware

import (
	"cmp"
	"context"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/internal/anomaly"
)

// unsampled is the span of a request the head sampler dropped, kept so that
// package anomaly can export it if the request turns out anomalous, and
// what otelhttp would have recorded on it. It keeps the few strings that
// takes, not the request: a goroutine monitor holds it for as long as it
// remembers the request.
type unsampled struct {
	anomaly.Server
	cfg *traceConfig

	// From the request, when it came.
	method, path, host, peer, userAgent, proto string
	tls                                        bool
	propagation                                [maxPropagationHeaders]propagationHeader // to find the parent when exported

	// When it ended.
	route    string
	status   int
	size     int64
	errType  string
	panicked bool
}

// newUnsampled keeps the span sc of the request r, otelhttp's copy of the
// request as it came, started at start, and gives r a context that carries
// it.
func newUnsampled(cfg *traceConfig, r *http.Request, sc trace.SpanContext, start time.Time) *unsampled {
	u := &unsampled{
		cfg: cfg, method: r.Method, path: r.URL.Path, host: cmp.Or(cfg.ServerName, r.Host),
		peer: r.RemoteAddr, userAgent: r.UserAgent(), proto: r.Proto, tls: r.TLS != nil,
	}
	n := 0
	for i, f := range cfg.propagationFields() {
		if v := r.Header[f]; len(v) > 0 && n < len(u.propagation) {
			u.propagation[n] = propagationHeader{field: i, value: v[0]}
			n++
		}
	}
	u.Init(cfg.replay.Tracer(), sc, start)
	ctx := &anomaly.ServerContext{}
	ctx.Init(r.Context(), &u.Server)
	// otelhttp made r for the handler alone and reads only its other fields
	// after it: changed in place, the handler's multipart form stays on it
	// too, for net/http to clean up.
	*r = *r.WithContext(ctx) // the copy WithContext makes stays on the stack
	return u
}

// maxPropagationHeaders is how many of the propagators' headers an
// unsampled span keeps, of those its request carried: a request carries one
// format's, W3C's two or B3's up to five, and maybe baggage.
const maxPropagationHeaders = 6

// A propagationHeader is one header the propagators read, as the request
// carried it: field is its index in propagationFields.
type propagationHeader struct {
	field int
	value string
}

// propagationFields are the header names the propagators read, in
// canonical form (Header.Get would canonicalize them, an allocation each,
// on every request).
func (cfg *traceConfig) propagationFields() []string {
	if f := cfg.fields.Load(); f != nil {
		return *f
	}
	var f []string
	for _, name := range cfg.propagators().Fields() {
		f = append(f, textproto.CanonicalMIMEHeaderKey(name))
	}
	if len(f) > 0 { // the global propagator may not be set yet
		cfg.fields.Store(&f)
	}
	return f
}

func (cfg *traceConfig) propagators() propagation.TextMapPropagator {
	if cfg.Propagators != nil {
		return cfg.Propagators
	}
	return otel.GetTextMapPropagator()
}

// end ends an unsampled request: its span is exported now if the request
// went wrong, later if something of it turns out to have.
func (t *tracedRequest) end(status int) {
	u := t.u
	u.route, u.status, u.size = t.c.Path(), status, t.c.Response().Size
	if status >= http.StatusInternalServerError {
		u.MarkAnomalous()
	}
	t.cfg.replay.Saw(u.End(u, time.Now()))
}

// Describe implements anomaly.Describer: the span otelhttp would have
// recorded for the request.
func (u *unsampled) Describe() (string, trace.SpanContext, []attribute.KeyValue, codes.Code, string) {
	name := u.cfg.names.name(u.method, u.route)
	carrier := propagation.HeaderCarrier{}
	fields := u.cfg.propagationFields()
	for _, h := range u.propagation {
		if h.value != "" {
			carrier.Set(fields[h.field], h.value)
		}
	}
	parent := trace.SpanContextFromContext(u.cfg.propagators().Extract(context.Background(), carrier))
	attrs := make([]attribute.KeyValue, 0, 16)
	attrs = append(attrs, anomaly.MethodAttributes(u.method)...)
	scheme := "http"
	if u.tls {
		scheme = "https"
	}
	attrs = append(attrs, semconv.URLScheme(scheme), semconv.URLPath(u.path), semconv.HTTPRoute(u.route))
	host, port := splitHostPort(u.host)
	attrs = append(attrs, semconv.ServerAddress(host))
	if anomaly.NonDefaultPort(scheme, port) {
		attrs = append(attrs, semconv.ServerPort(port))
	}
	if peer, peerPort := splitHostPort(u.peer); peer != "" {
		attrs = append(attrs, semconv.NetworkPeerAddress(peer), semconv.ClientAddress(peer))
		if peerPort > 0 {
			attrs = append(attrs, semconv.NetworkPeerPort(peerPort))
		}
	}
	if u.userAgent != "" {
		attrs = append(attrs, semconv.UserAgentOriginal(u.userAgent))
	}
	if v := anomaly.ProtocolVersion(u.proto); v != "" {
		attrs = append(attrs, semconv.NetworkProtocolVersion(v))
	}
	attrs = append(attrs, semconv.HTTPResponseStatusCode(u.status), semconv.HTTPResponseBodySize(int(u.size)))
	if u.status < http.StatusInternalServerError {
		return name, parent, attrs, codes.Unset, ""
	}
	if u.errType == "" {
		attrs = append(attrs, semconv.ErrorTypeKey.String(strconv.Itoa(u.status)))
	}
	if u.panicked {
		return name, parent, attrs, codes.Error, "panic"
	}
	return name, parent, attrs, codes.Error, ""
}

func splitHostPort(hostport string) (string, int) {
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport, 0
	}
	port, _ := strconv.Atoi(p)
	return host, port
}
