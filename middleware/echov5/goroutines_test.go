package echov5_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v5"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	ttmw "github.com/telltale-go/telltale/middleware/echov5"
	"github.com/telltale-go/telltale/vocab"
)

// A goroutine a handler started and left running after its request ended
// is reported as a span in that request's trace, under its server span,
// with the request's route and the goroutine's stack — also when the head
// sampler dropped the request, which is then exported with it.
func TestLeakedGoroutineIsReported(t *testing.T) {
	for _, sampled := range []bool{true, false} {
		v := newEnv(t)
		if !sampled {
			v = newUnsampledEnv(t)
		}
		mon := ttmw.NewGoroutineMonitor(ttmw.GoroutineMonitorConfig{TracerProvider: v.tp, Interval: time.Millisecond, Grace: time.Millisecond})
		v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp}))
		v.e.Use(ttmw.LeaksWithConfig(ttmw.LeaksConfig{Goroutines: mon}))
		release := make(chan struct{})
		t.Cleanup(func() { close(release) })
		seen := make(chan trace.SpanContext, 1)
		v.e.GET("/fire/:id", func(c *echo.Context) error {
			seen <- trace.SpanContextFromContext(c.Request().Context())
			go func() { <-release }() // outlives the request
			return c.NoContent(http.StatusAccepted)
		})
		v.start(t)
		if code, _ := v.do(t, http.MethodGet, "/fire/1", nil); code != http.StatusAccepted {
			t.Fatalf("status %d", code)
		}
		sc := <-seen
		var orphans []ttmw.OrphanedGoroutine
		eventually(t, "the orphan", func() bool { orphans = mon.Check(); return len(orphans) == 1 })
		if o := orphans[0]; o.Route != "/fire/:id" || o.TraceID != sc.TraceID().String() || !strings.Contains(o.Stack, "TestLeakedGoroutineIsReported") {
			t.Errorf("sampled %v: orphan %+v", sampled, o)
		}
		span := v.waitSpan(t, func(s sdktrace.ReadOnlySpan) bool { return s.Name() == vocab.SpanGoroutineOrphaned }, "the orphan's span")
		if span.Parent().SpanID() != sc.SpanID() || span.SpanContext().TraceID() != sc.TraceID() {
			t.Errorf("sampled %v: orphan span under %v, want the request's server span %v", sampled, span.Parent(), sc)
		}
		if got := mustAttr(t, span, "http.route").AsString(); got != "/fire/:id" {
			t.Errorf("sampled %v: http.route = %q", sampled, got)
		}
		server := v.serverSpan(t, "GET /fire/:id")
		if server.SpanContext().SpanID() != sc.SpanID() {
			t.Errorf("sampled %v: server span %v, the handler saw %v", sampled, server.SpanContext(), sc)
		}
	}
}
