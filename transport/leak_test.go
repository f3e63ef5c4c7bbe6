package transport_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/telltale-go/telltale/transport"
)

// here returns the file and line of its caller.
func here() (string, int) {
	_, file, line, _ := runtime.Caller(1)
	return file, line
}

func leakEvent(t *testing.T, s sdktrace.ReadOnlySpan) sdktrace.Event {
	t.Helper()
	for _, ev := range s.Events() {
		if ev.Name == transport.EventBodyLeaked {
			return ev
		}
	}
	t.Fatalf("span %q has no %s event; events: %v", s.Name(), transport.EventBodyLeaked, s.Events())
	return sdktrace.Event{}
}

func checkCallSite(t *testing.T, ev sdktrace.Event, file string, line int) {
	t.Helper()
	f, _ := attrOf(ev.Attributes, transport.AttrCodeFile)
	l, _ := attrOf(ev.Attributes, transport.AttrCodeLine)
	if f.AsString() != file || int(l.AsInt64()) != line {
		t.Errorf("leak call site = %s:%d, want %s:%d", f.AsString(), l.AsInt64(), file, line)
	}
}

// collectLeaks runs the collector until n bodies have been reported as
// leaked, and returns the ended spans, each checked to have status Error.
func collectLeaks(t *testing.T, e *env, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for e.tr.Stats().Leaked < int64(n) && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
	spans := e.waitEnded(t, n)
	for _, s := range spans {
		if s.Status().Code != codes.Error {
			t.Errorf("leaked span status = %v, want Error", s.Status())
		}
	}
	return spans
}

// waitGoroutines waits until the number of goroutines is at most n.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutines: %d, want at most the baseline %d\n%s", runtime.NumGoroutine(), n, buf)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

func TestForgottenCloseIsReportedWhenUnreachable(t *testing.T) {
	srv := payloadServer(t, 256<<10) // larger than socket buffers: the server stays blocked writing
	logs := &syncBuffer{}
	e := newEnv(t, nil, transport.WithLogger(slogTo(logs)))
	baseline := runtime.NumGoroutine()

	const leaks = 30
	var file string
	var line int
	for range leaks {
		func() {
			resp, err := e.client.Get(srv.URL + "/items?token=s3cret")
			file, line = here()
			line-- // the Get above
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.StatusCode // forgets resp.Body.Close()
		}()
	}
	// A collection may already have found some of them.
	if st := e.tr.Stats(); st.Open+st.Leaked != leaks {
		t.Fatalf("open + leaked bodies = %d + %d, want %d", st.Open, st.Leaked, leaks)
	}

	spans := collectLeaks(t, e, leaks)
	for _, s := range spans {
		ev := leakEvent(t, s)
		checkCallSite(t, ev, file, line)
		if r, _ := attrOf(ev.Attributes, transport.AttrLeakReason); r.AsString() != string(transport.LeakUnreachable) {
			t.Errorf("reason = %q, want unreachable", r.AsString())
		}
		if u := spanAttr(t, s, "url.full").AsString(); strings.Contains(u, "s3cret") {
			t.Errorf("url.full leaks the query value: %s", u)
		}
	}
	if got := e.sum(t, transport.MetricBodiesLeaked, attribute.String(transport.AttrLeakReason, "unreachable")); got != leaks {
		t.Errorf("%s = %d, want %d", transport.MetricBodiesLeaked, got, leaks)
	}
	if got := e.sum(t, transport.MetricBodiesLeaked, attribute.String("server.address", "127.0.0.1")); got != leaks {
		t.Errorf("%s{server.address=127.0.0.1} = %d, want %d", transport.MetricBodiesLeaked, got, leaks)
	}
	if got := e.sum(t, transport.MetricBodiesOpen, attribute.KeyValue{}); got != 0 {
		t.Errorf("%s = %d after repair, want 0", transport.MetricBodiesOpen, got)
	}
	if n := strings.Count(logs.String(), "response body leaked"); n != leaks {
		t.Errorf("logged %d leak warnings, want %d", n, leaks)
	}
	if strings.Contains(logs.String(), "s3cret") {
		t.Errorf("log leaks the query value:\n%s", logs)
	}
	// The repair closed the bodies: the connections, their read and write
	// loops and the server's handlers are gone.
	e.tr.CloseIdleConnections()
	waitGoroutines(t, baseline)
}

func TestScopeEndReportsAndRepairsOpenBodies(t *testing.T) {
	srv := payloadServer(t, 64<<10)
	e := newEnv(t, nil)

	ctx, scope := transport.WithScope(context.Background())
	closed := get(t, e.client, ctx, srv.URL)
	drainClose(closed)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	leaked, err := e.client.Do(req)
	file, line := here()
	line--
	if err != nil {
		t.Fatal(err)
	}

	leaks := scope.End()
	if len(leaks) != 1 {
		t.Fatalf("scope.End() = %d leaks, want 1", len(leaks))
	}
	l := leaks[0]
	if l.Reason != transport.LeakOutOfScope || !l.Repaired || l.CallSite.File != file || l.CallSite.Line != line {
		t.Errorf("leak = %+v, want out_of_scope, repaired, at %s:%d", l, file, line)
	}
	if again := scope.End(); again != nil {
		t.Errorf("second End() = %v, want nil", again)
	}
	// The application's late read sees why its body is gone.
	if _, err := leaked.Body.Read(make([]byte, 10)); !errors.Is(err, transport.ErrLeakRepaired) {
		t.Errorf("Read after repair: %v, want ErrLeakRepaired", err)
	}
	if err := leaked.Body.Close(); err != nil {
		t.Errorf("Close after repair: %v", err)
	}
	spans := e.waitEnded(t, 2)
	checkCallSite(t, leakEvent(t, spans[1]), file, line)
	transport.VerifyNoOpenBodies(t, e.tr)
}

func TestReportOnlyLeavesLeakedBodyOpen(t *testing.T) {
	srv := payloadServer(t, 1<<10)
	e := newEnv(t, nil, transport.WithReportOnly())
	ctx, scope := transport.WithScope(context.Background())
	resp := get(t, e.client, ctx, srv.URL)
	leaks := scope.End()
	if len(leaks) != 1 || leaks[0].Repaired {
		t.Fatalf("leaks = %+v, want one, not repaired", leaks)
	}
	// Untouched: the application can still read it all.
	b, err := io.ReadAll(resp.Body)
	if err != nil || len(b) != 1<<10 {
		t.Fatalf("read %d bytes, err %v; want 1024, nil", len(b), err)
	}
	_ = resp.Body.Close()
	if n := len(e.waitEnded(t, 1)); n != 1 {
		t.Fatalf("%d spans ended, want 1 (ended once, by the leak)", n)
	}
}

func TestTooOldBodyIsReported(t *testing.T) {
	srv := payloadServer(t, 64<<10)
	e := newEnv(t, nil, transport.WithMaxBodyAge(50*time.Millisecond))
	resp := get(t, e.client, context.Background(), srv.URL)
	defer resp.Body.Close()
	spans := e.waitEnded(t, 1)
	ev := leakEvent(t, spans[0])
	if r, _ := attrOf(ev.Attributes, transport.AttrLeakReason); r.AsString() != string(transport.LeakTooOld) {
		t.Errorf("reason = %q, want too_old", r.AsString())
	}
	if age, _ := attrOf(ev.Attributes, transport.AttrLeakAge); age.AsFloat64() < 50 {
		t.Errorf("age = %vms, want at least 50", age.AsFloat64())
	}
}

func TestVerifyNoOpenBodiesNamesTheCallSite(t *testing.T) {
	srv := payloadServer(t, 10)
	e := newEnv(t, nil)
	resp := get(t, e.client, context.Background(), srv.URL+"/a?key=hidden")
	// get is the helper that made the request: its line is the call site.
	ft := &fakeT{}
	transport.VerifyNoOpenBodies(ft, e.tr)
	if !strings.Contains(ft.msg, "main_test.go:") || !strings.Contains(ft.msg, "1 response bodies left open") {
		t.Errorf("VerifyNoOpenBodies message does not name the call site:\n%s", ft.msg)
	}
	if strings.Contains(ft.msg, "hidden") {
		t.Errorf("message leaks a query value:\n%s", ft.msg)
	}
	drainClose(resp)
	ft = &fakeT{}
	transport.VerifyNoOpenBodies(ft, e.tr)
	if ft.msg != "" {
		t.Errorf("after Close: %s", ft.msg)
	}
}

type fakeT struct{ msg string }

func (f *fakeT) Helper()                           {}
func (f *fakeT) Errorf(format string, args ...any) { f.msg += sprintf(format, args...) }
