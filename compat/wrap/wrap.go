package wrap

import (
	"log/slog"
	"net/http"
	"os"
	"reflect"
	"sync"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/telltale-go/telltale/transport"
)

// NoBackstopEnv, set to 1 in the environment of a wrapped suite, disables
// telltale's backstop deadline with transport.WithTimeout(0): a run with it
// and one without tell whether a difference comes from the deadline telltale
// gives requests that have none.
const NoBackstopEnv = "TELLTALE_COMPAT_NO_BACKSTOP"

// MarkEnv names a file that the first wrapper made creates, so that the
// harness can tell a wrapped run that went through telltale from one whose
// patch no longer reaches the package's requests.
const MarkEnv = "TELLTALE_COMPAT_MARK"

var (
	wrapped   sync.Map // base http.RoundTripper → *transport.Transport
	firstOnce sync.Once
)

// Transport returns base wrapped by transport.New, the way an application
// wraps its transport, with leak warnings discarded. A nil base means
// http.DefaultTransport, as for http.Client and httputil.ReverseProxy. A
// base already wrapped is returned as is. The same base always gets the same
// wrapper, so that each of the suite's transports keeps one connection pool,
// as it would plain.
func Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if _, ok := base.(*transport.Transport); ok {
		return base
	}
	if !reflect.ValueOf(base).Comparable() {
		return newTransport(base) // a func, or a struct holding one, cannot be a map key
	}
	if t, ok := wrapped.Load(base); ok {
		return t.(*transport.Transport)
	}
	t, _ := wrapped.LoadOrStore(base, newTransport(base))
	return t.(*transport.Transport)
}

// Client returns a shallow copy of c whose transport is wrapped. The suite's
// own client keeps its transport, so that code inspecting it (resty's
// Client.Transport, which wants an *http.Transport) sees what it set.
func Client(c *http.Client) *http.Client {
	cp := *c
	cp.Transport = Transport(c.Transport)
	return &cp
}

func newTransport(base http.RoundTripper) *transport.Transport {
	// Spans are recorded (and dropped: no exporter), as in production:
	// telltale does more for a recording span than for a no-op one. The
	// global provider is the fallback telltale documents; the option that
	// sets it is left out so that the harness needs no more of telltale's
	// API than New and WithLogger.
	firstOnce.Do(func() {
		otel.SetTracerProvider(sdktrace.NewTracerProvider())
		if mark := os.Getenv(MarkEnv); mark != "" {
			_ = os.WriteFile(mark, nil, 0o644)
		}
	})
	opts := []transport.Option{transport.WithLogger(slog.New(slog.DiscardHandler))}
	if os.Getenv(NoBackstopEnv) == "1" {
		opts = append(opts, transport.WithTimeout(0))
	}
	return transport.New(base, opts...)
}
