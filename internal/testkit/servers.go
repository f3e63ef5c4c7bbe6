package testkit

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// BlackHole is an upstream that accepts requests and never answers, until
// the caller gives up or the test ends.
func BlackHole(t testing.TB) *httptest.Server {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	return srv
}

// DiscardExporter is the exporter of the benchmarks' synchronous
// processor: they measure the instrumentation, not an exporter.
type DiscardExporter struct{}

// ExportSpans discards the spans.
func (DiscardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }

// Shutdown does nothing.
func (DiscardExporter) Shutdown(context.Context) error { return nil }

// DiscardWriter is a ResponseWriter a benchmark reuses from request to
// request.
type DiscardWriter struct {
	H      http.Header
	Status int
}

// Header returns the header map.
func (w *DiscardWriter) Header() http.Header { return w.H }

// Write discards p.
func (w *DiscardWriter) Write(p []byte) (int, error) { return len(p), nil }

// WriteHeader notes the status.
func (w *DiscardWriter) WriteHeader(code int) { w.Status = code }
