package middleware_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	echomw "github.com/labstack/echo/v4/middleware"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/internal/testkit"
	ttmw "github.com/telltale-go/telltale/middleware"
	"github.com/telltale-go/telltale/transport"
	"github.com/telltale-go/telltale/vocab"
)

// stack puts telltale's three middlewares on v's Echo, with a deadline of
// timeout.
func (v *env) stack(timeout time.Duration, mon *ttmw.GoroutineMonitor) {
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp, Propagators: v.prop}))
	v.e.Use(ttmw.Deadline(timeout))
	v.e.Use(ttmw.LeaksWithConfig(ttmw.LeaksConfig{Goroutines: mon}))
}

// seenIDs records the span context each handler saw.
type seenIDs chan trace.SpanContext

func (s seenIDs) note(c echo.Context) { s <- trace.SpanContextFromContext(c.Request().Context()) }

// exported returns the spans of trace id, waiting until want of them have
// been exported.
func (v *env) exported(t *testing.T, id trace.TraceID, want int) []sdktrace.ReadOnlySpan {
	t.Helper()
	var spans []sdktrace.ReadOnlySpan
	eventually(t, "the anomaly's spans to be exported", func() bool {
		spans = spans[:0]
		for _, s := range v.rec.Ended() {
			if s.SpanContext().TraceID() == id {
				spans = append(spans, s)
			}
		}
		return len(spans) >= want
	})
	return spans
}

func byKind(spans []sdktrace.ReadOnlySpan, kind trace.SpanKind) sdktrace.ReadOnlySpan {
	for _, s := range spans {
		if s.SpanKind() == kind {
			return s
		}
	}
	return nil
}

// A healthy request the head sampler dropped, outbound call included,
// exports nothing.
func TestUnsampledHealthyRequestExportsNothing(t *testing.T) {
	v := newUnsampledEnv(t)
	up := payloadServer(t)
	v.stack(time.Second, nil)
	v.e.GET("/ok", func(c echo.Context) error {
		resp, err := v.client.Do(mustRequest(t, c, up.URL))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		return c.NoContent(http.StatusOK)
	})
	v.start(t)
	if code, _ := v.do(t, http.MethodGet, "/ok", nil); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	time.Sleep(20 * time.Millisecond)
	if n := len(v.rec.Ended()); n != 0 {
		t.Errorf("%d spans exported for a healthy unsampled request", n)
	}
}

// An unsampled request that went wrong is exported as a readable trace: its
// server span — the ids it had, the route name, status, deadline
// attributes, what went wrong — with its anomalous client spans under it.
func TestUnsampledAnomaliesAreExportedAsATrace(t *testing.T) {
	cases := []struct {
		name    string
		handler func(v *env, up string) echo.HandlerFunc
		status  int
		check   func(t *testing.T, server sdktrace.ReadOnlySpan, spans []sdktrace.ReadOnlySpan)
	}{
		{"deadline answer", func(v *env, up string) echo.HandlerFunc {
			return func(c echo.Context) error {
				resp, err := v.client.Do(mustRequest(t, c, up))
				if err != nil {
					return err
				}
				return resp.Body.Close()
			}
		}, http.StatusGatewayTimeout, func(t *testing.T, server sdktrace.ReadOnlySpan, spans []sdktrace.ReadOnlySpan) {
			if !mustAttr(t, server, vocab.AttrDeadlineExceeded).AsBool() || mustAttr(t, server, vocab.AttrDeadlineTimeout).AsInt64() != 100 {
				t.Errorf("server span attributes %v", server.Attributes())
			}
			client := byKind(spans, trace.SpanKindClient)
			if client == nil || mustAttr(t, client, "error.type").AsString() != vocab.ErrorDeadlineExceeded {
				t.Fatalf("no client span with deadline_exceeded among %d spans", len(spans))
			}
			if client.Parent().SpanID() != server.SpanContext().SpanID() {
				t.Error("the client span is not under the server span")
			}
		}},
		{"5xx error", func(v *env, up string) echo.HandlerFunc {
			return func(c echo.Context) error { return errors.New("database is down") }
		}, http.StatusInternalServerError, func(t *testing.T, server sdktrace.ReadOnlySpan, _ []sdktrace.ReadOnlySpan) {
			if server.Status().Code != codes.Error || mustAttr(t, server, "error.type").AsString() != "*errors.errorString" {
				t.Errorf("status %v, attributes %v", server.Status(), server.Attributes())
			}
			if len(server.Events()) != 1 || server.Events()[0].Name != "exception" {
				t.Errorf("events %v", server.Events())
			}
		}},
		{"leak", func(v *env, up string) echo.HandlerFunc {
			return func(c echo.Context) error {
				resp, err := v.client.Do(mustRequest(t, c, up))
				if err != nil {
					return err
				}
				_ = resp.StatusCode // never closed
				return c.NoContent(http.StatusOK)
			}
		}, http.StatusOK, func(t *testing.T, server sdktrace.ReadOnlySpan, spans []sdktrace.ReadOnlySpan) {
			if mustAttr(t, server, vocab.AttrLeaks).AsInt64() != 1 || len(server.Events()) != 1 || server.Events()[0].Name != vocab.EventBodyLeaked {
				t.Errorf("server span: attributes %v, events %v", server.Attributes(), server.Events())
			}
			ev := server.Events()[0]
			if f, _ := attrOf(ev.Attributes, "code.file.path"); !strings.HasSuffix(f.AsString(), "span_test.go") {
				t.Errorf("leak call site %q", f.AsString())
			}
			if client := byKind(spans, trace.SpanKindClient); client == nil || client.Parent().SpanID() != server.SpanContext().SpanID() {
				t.Error("no leaked client span under the server span")
			}
		}},
		{"overrun", func(v *env, up string) echo.HandlerFunc {
			return func(c echo.Context) error {
				time.Sleep(100*time.Millisecond + ttmw.DefaultOverrunGrace + 100*time.Millisecond) // ignores its context
				return c.NoContent(http.StatusOK)
			}
		}, http.StatusOK, func(t *testing.T, server sdktrace.ReadOnlySpan, _ []sdktrace.ReadOnlySpan) {
			if mustAttr(t, server, vocab.AttrDeadlineOverrun).AsInt64() <= int64(ttmw.DefaultOverrunGrace/time.Millisecond) {
				t.Error("no overrun")
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := newUnsampledEnv(t)
			up := blackHole(t)
			if c.name == "leak" {
				up = payloadServer(t)
			}
			v.stack(100*time.Millisecond, nil)
			seen := make(seenIDs, 1)
			h := c.handler(v, up.URL)
			v.e.GET("/things/:id", func(ctx echo.Context) error { seen.note(ctx); return h(ctx) })
			v.start(t)
			caller := trace.SpanContextFromContext(v.prop.Extract(context.Background(), propagation.HeaderCarrier{
				"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}}))
			code, _ := v.do(t, http.MethodGet, "/things/1", http.Header{"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}})
			if code != c.status {
				t.Fatalf("status %d, want %d", code, c.status)
			}
			sc := <-seen
			spans := v.exported(t, sc.TraceID(), 1)
			server := byKind(spans, trace.SpanKindServer)
			if server == nil {
				t.Fatalf("no server span exported among %d", len(spans))
			}
			if sc.TraceID() != caller.TraceID() || server.SpanContext().SpanID() != sc.SpanID() || server.Parent().SpanID() != caller.SpanID() {
				t.Errorf("server span %v under %v; the handler saw %v, the caller was %v", server.SpanContext(), server.Parent(), sc, caller)
			}
			if server.Name() != "GET /things/:id" || mustAttr(t, server, "http.route").AsString() != "/things/:id" ||
				mustAttr(t, server, "http.response.status_code").AsInt64() != int64(c.status) || !mustAttr(t, server, vocab.AttrReplayed).AsBool() {
				t.Errorf("server span %q, attributes %v", server.Name(), server.Attributes())
			}
			c.check(t, server, spans)
		})
	}
}

// A panic of an unsampled request, with Echo's Recover outside Trace, is
// exported as a 500.
func TestUnsampledPanicIsExported(t *testing.T) {
	v := newUnsampledEnv(t)
	v.e.Use(echomw.Recover())
	v.stack(time.Second, nil)
	seen := make(seenIDs, 1)
	v.e.GET("/boom", func(c echo.Context) error { seen.note(c); panic("boom") })
	v.start(t)
	if code, _ := v.do(t, http.MethodGet, "/boom", nil); code != http.StatusInternalServerError {
		t.Fatalf("status %d", code)
	}
	server := v.exported(t, (<-seen).TraceID(), 1)[0]
	if server.Status().Code != codes.Error || mustAttr(t, server, "error.type").AsString() != vocab.ErrorPanic {
		t.Errorf("status %v, attributes %v", server.Status(), server.Attributes())
	}
}

// manyFields is a propagator that reads many headers and finds nothing in
// them, as a B3 propagator does for a request that carries W3C's.
type manyFields struct{}

func (manyFields) Inject(context.Context, propagation.TextMapCarrier) {}
func (manyFields) Extract(ctx context.Context, _ propagation.TextMapCarrier) context.Context {
	return ctx
}
func (manyFields) Fields() []string {
	return []string{"x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "b3"}
}

// An unsampled request's span is exported under the caller's span, found
// in whichever of the propagators' headers the request carried, however
// many headers the propagators read before those.
func TestUnsampledParentFoundBehindManyPropagationFields(t *testing.T) {
	v := newUnsampledEnv(t)
	v.prop = propagation.NewCompositeTextMapPropagator(manyFields{}, propagation.TraceContext{}, propagation.Baggage{})
	v.stack(time.Second, nil)
	seen := make(seenIDs, 1)
	v.e.GET("/fail", func(c echo.Context) error { seen.note(c); return c.NoContent(http.StatusBadGateway) })
	v.start(t)
	const parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
	if code, _ := v.do(t, http.MethodGet, "/fail", http.Header{"Traceparent": {parent}}); code != http.StatusBadGateway {
		t.Fatalf("status %d", code)
	}
	server := v.exported(t, (<-seen).TraceID(), 1)[0]
	if got := server.Parent().SpanID().String(); got != "b7ad6b7169203331" {
		t.Errorf("exported under %v, want the caller's span b7ad6b7169203331", server.Parent())
	}
}

// A goroutine an unsampled request left behind is reported in that
// request's trace, under its server span, which is exported with it.
func TestUnsampledOrphanIsExportedWithItsRequest(t *testing.T) {
	v := newUnsampledEnv(t)
	mon := ttmw.NewGoroutineMonitor(ttmw.GoroutineMonitorConfig{TracerProvider: v.tp, Interval: time.Millisecond, Grace: time.Millisecond})
	v.stack(time.Second, mon)
	release := make(chan struct{})
	defer close(release)
	seen := make(seenIDs, 1)
	v.e.GET("/fire", func(c echo.Context) error {
		seen.note(c)
		go func() { <-release }()
		return c.NoContent(http.StatusAccepted)
	})
	v.start(t)
	v.do(t, http.MethodGet, "/fire", nil)
	sc := <-seen
	time.Sleep(5 * time.Millisecond)
	eventually(t, "the orphan", func() bool { return len(mon.Check()) == 1 })
	spans := v.exported(t, sc.TraceID(), 2)
	server, orphan := byKind(spans, trace.SpanKindServer), byKind(spans, trace.SpanKindInternal)
	if server == nil || orphan == nil || orphan.Name() != vocab.SpanGoroutineOrphaned {
		t.Fatalf("spans %v", spans)
	}
	if server.SpanContext().SpanID() != sc.SpanID() || orphan.Parent().SpanID() != sc.SpanID() {
		t.Errorf("orphan %v under %v; server %v", orphan.SpanContext(), orphan.Parent(), server.SpanContext())
	}
}

func mustRequest(t *testing.T, c echo.Context, url string) *http.Request {
	req, err := http.NewRequestWithContext(c.Request().Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Error(err)
	}
	return req
}

// A handler that reports its own anomaly — here a partial answer — gets
// it on its server span, and an unsampled request is exported for it.
func TestReportAnomaly(t *testing.T) {
	for _, sampled := range []bool{true, false} {
		v := newEnv(t)
		if !sampled {
			v = newUnsampledEnv(t)
		}
		v.stack(time.Second, nil)
		seen := make(seenIDs, 1)
		v.e.GET("/feed", func(c echo.Context) error {
			seen.note(c)
			ttmw.ReportAnomaly(c.Request().Context(), "partial: ads missing")
			return c.NoContent(http.StatusOK)
		})
		v.start(t)
		v.do(t, http.MethodGet, "/feed", nil)
		server := v.exported(t, (<-seen).TraceID(), 1)[0]
		if evs := server.Events(); len(evs) != 1 || evs[0].Name != vocab.EventAnomaly {
			t.Fatalf("sampled %v: events %v", sampled, evs)
		}
		if why, _ := attrOf(server.Events()[0].Attributes, vocab.AttrAnomalyReason); why.AsString() != "partial: ads missing" {
			t.Errorf("reason %q", why.AsString())
		}
	}
	ttmw.ReportAnomaly(context.Background(), "outside a request") // does nothing
}

// A call the handler makes in a trace of its own (trace.WithNewRoot) is
// replayed in that trace, under that root, and nothing warns about a
// set-up that is right.
func TestUnsampledCallUnderANewRoot(t *testing.T) {
	v := newUnsampledEnv(t, transport.WithLogger(testkit.Logger(&testkit.SyncBuffer{})))
	logs := &testkit.SyncBuffer{}
	tr := transport.New(nil, transport.WithTracerProvider(v.tp), transport.WithLogger(testkit.Logger(logs)))
	defer tr.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	_ = ln.Close()
	v.stack(time.Second, nil)
	roots := make(chan trace.SpanContext, 1)
	v.e.GET("/job", func(c echo.Context) error {
		ctx, root := v.tp.Tracer("app").Start(c.Request().Context(), "background", trace.WithNewRoot())
		defer root.End()
		roots <- root.SpanContext()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, dead, nil)
		if _, err := tr.Client().Do(req); err == nil {
			t.Error("no error")
		}
		return c.NoContent(http.StatusOK)
	})
	v.start(t)
	v.do(t, http.MethodGet, "/job", nil)
	root := <-roots
	spans := v.exported(t, root.TraceID(), 1)
	if spans[0].Parent().SpanID() != root.SpanID() {
		t.Errorf("replayed under %v, want the new root %v", spans[0].Parent(), root)
	}
	if logs.String() != "" {
		t.Errorf("logged:\n%s", logs)
	}
}
