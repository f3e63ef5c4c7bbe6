package middleware_test

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/telltale-go/telltale/internal/goroutines"
	ttmw "github.com/telltale-go/telltale/middleware"
	"github.com/telltale-go/telltale/sampling"
	"github.com/telltale-go/telltale/transport"
	"github.com/telltale-go/telltale/vocab"
)

// fakeClock is a monitor's clock that moves only when the test moves it:
// the goroutines a test leaves are real, only the monitor's idea of how long
// ago their request ended is not.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

// newFakeClock gives mon a fake clock and returns it.
func newFakeClock(mon *ttmw.GoroutineMonitor) *fakeClock {
	c := &fakeClock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	ttmw.SetMonitorClock(mon, c.Now)
	return c
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// The incident's step 4, caught: a handler starts goroutines that outlive
// the request. The monitor finds the one still blocked after the grace
// period, names its request, route and line, and reports it once as a span
// in the request's trace; one that finished, or one that is meant to live
// on, is not reported.
func TestLeakedGoroutineIsReported(t *testing.T) {
	v := newEnv(t)
	mon := ttmw.NewGoroutineMonitor(ttmw.GoroutineMonitorConfig{
		TracerProvider:  v.tp,
		Interval:        time.Second,
		Grace:           time.Second,
		IgnoreFunctions: []string{"github.com/telltale-go/telltale/middleware_test.backgroundAudit"},
	})
	clock := newFakeClock(mon)
	ended := clock.Now()
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp}))
	v.e.Use(ttmw.LeaksWithConfig(ttmw.LeaksConfig{Goroutines: mon}))

	release := make(chan struct{})
	var stuckLine int
	var labels atomic.Value
	v.e.GET("/fanout/:id", func(c echo.Context) error {
		route, _ := pprof.Label(c.Request().Context(), vocab.LabelRoute)
		traceID, _ := pprof.Label(c.Request().Context(), vocab.LabelTraceID)
		labels.Store(route + " " + traceID)
		go quickTask()              // finishes within Grace
		go backgroundAudit(release) // meant to outlive the request
		_, _, stuckLine, _ = runtime.Caller(0)
		go func() { <-release }() // the orphan: stuckLine+1
		return c.NoContent(http.StatusOK)
	})
	v.start(t)
	defer close(release)

	v.do(t, http.MethodGet, "/fanout/1", nil)
	server := v.serverSpan(t, "GET /fanout/:id")
	if got, want := labels.Load(), "/fanout/:id "; got != want {
		t.Errorf("pprof labels in the handler: %q, want %q (the trace id only with ProfileLabels)", got, want)
	}
	if orphans := mon.Check(); len(orphans) != 0 {
		t.Errorf("orphans reported within the grace period: %+v", orphans)
	}
	eventually(t, "quickTask to return", func() bool {
		return !labelledRunning(t, "github.com/telltale-go/telltale/middleware_test.quickTask")
	})
	clock.Advance(2 * time.Second)
	orphans := mon.Check()
	if len(orphans) != 1 {
		t.Fatalf("%d orphans, want 1: %+v", len(orphans), orphans)
	}
	o := orphans[0]
	if o.Route != "/fanout/:id" || o.Count != 1 || o.TraceID != server.SpanContext().TraceID().String() {
		t.Errorf("orphan %+v", o)
	}
	if !strings.Contains(o.Function, "TestLeakedGoroutineIsReported") || o.Blocked.Line != stuckLine+1 {
		t.Errorf("orphan started as %s, blocked at %s; want the handler's goroutine at line %d", o.Function, o.Blocked, stuckLine+1)
	}
	if !o.RequestEnded.Equal(ended) {
		t.Errorf("request ended %v, want %v", o.RequestEnded, ended)
	}

	span := v.waitSpan(t, func(s sdktrace.ReadOnlySpan) bool { return s.Name() == vocab.SpanGoroutineOrphaned }, "orphan span")
	if span.SpanContext().TraceID() != server.SpanContext().TraceID() || span.Parent().SpanID() != server.SpanContext().SpanID() {
		t.Error("the orphan span is not in the request's trace, under its server span")
	}
	if links := span.Links(); len(links) != 1 || links[0].SpanContext.SpanID() != server.SpanContext().SpanID() {
		t.Errorf("links %v, want the server span", links)
	}
	if st := mustAttr(t, span, "code.stacktrace").AsString(); !strings.Contains(st, "TestLeakedGoroutineIsReported") {
		t.Errorf("stack %q", st)
	}
	if got := mustAttr(t, span, "code.line.number").AsInt64(); got != int64(stuckLine+1) {
		t.Errorf("code.line.number = %d, want %d", got, stuckLine+1)
	}
	if got := mustAttr(t, span, vocab.AttrGoroutineEndedAgo).AsInt64(); got != 2000 {
		t.Errorf("%s = %v, want 2000", vocab.AttrGoroutineEndedAgo, got)
	}
	if span.Status().Code != codes.Error {
		t.Errorf("status %v", span.Status())
	}

	// Reported once, however often it is seen.
	clock.Advance(time.Second)
	if n := len(mon.Check()); n != 1 {
		t.Errorf("second check: %d orphans", n)
	}
	var spans int
	for _, s := range v.rec.Ended() {
		if s.Name() == vocab.SpanGoroutineOrphaned {
			spans++
		}
	}
	if spans != 1 {
		t.Errorf("%d orphan spans after two checks, want 1", spans)
	}
}

// backgroundAudit stands for work meant to outlive its request.
func backgroundAudit(release chan struct{}) { <-release }

// quickTask stands for work that ends soon after its request.
func quickTask() {}

// Start and Stop run and stop the periodic check; the package's goleak check
// proves the goroutine is gone.
func TestGoroutineMonitorStartStop(t *testing.T) {
	mon := ttmw.NewGoroutineMonitor(ttmw.GoroutineMonitorConfig{Interval: time.Millisecond})
	mon.Start()
	mon.Start()
	eventually(t, "a periodic check", func() bool { return !mon.LastCheck().IsZero() })
	mon.Stop()
	mon.Stop()
	ttmw.NewGoroutineMonitor(ttmw.GoroutineMonitorConfig{}).Stop() // never started
}

// forgottenOrphan serves, under a monitor with Grace and a history of 32
// requests, a request to /orphan that leaves a goroutine behind, then
// enough others that every shard of the history forgets its oldest.
func forgottenOrphan(t *testing.T, grace time.Duration) (*ttmw.GoroutineMonitor, *fakeClock) {
	t.Helper()
	v := newEnv(t)
	mon := ttmw.NewGoroutineMonitor(ttmw.GoroutineMonitorConfig{TracerProvider: v.tp, Interval: time.Second, Grace: grace, History: 32})
	clock := newFakeClock(mon)
	v.e.Use(ttmw.LeaksWithConfig(ttmw.LeaksConfig{Goroutines: mon}))
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	v.e.GET("/orphan", func(c echo.Context) error {
		go func() { <-release }()
		return c.NoContent(http.StatusOK)
	})
	v.e.GET("/ok", func(c echo.Context) error { return c.NoContent(http.StatusOK) })
	v.start(t)
	v.do(t, http.MethodGet, "/orphan", nil)
	for range 100 {
		v.do(t, http.MethodGet, "/ok", nil)
	}
	return mon, clock
}

// A monitor remembers a bounded number of ended requests; an orphan of a
// forgotten request is still reported, without its end time.
func TestGoroutineMonitorForgetsOldRequests(t *testing.T) {
	mon, clock := forgottenOrphan(t, time.Second)
	clock.Advance(2 * time.Second)
	orphans := mon.Check()
	if len(orphans) != 1 || orphans[0].Route != "/orphan" || !orphans[0].RequestEnded.IsZero() || orphans[0].TraceID != "" {
		t.Fatalf("orphans %+v, want the /orphan goroutine, end time forgotten, untraced", orphans)
	}
}

// An orphan that moves between two blocking points (as the incident's
// goroutine that kept calling upstreams between sleeps) is reported once
// per stack: coming back to a stack already reported while it was
// elsewhere does not report it again.
func TestMovingOrphanReportedOnce(t *testing.T) {
	v := newEnv(t)
	mon := ttmw.NewGoroutineMonitor(ttmw.GoroutineMonitorConfig{TracerProvider: v.tp, Interval: time.Second, Grace: time.Second})
	clock := newFakeClock(mon)
	v.e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp}))
	v.e.Use(ttmw.LeaksWithConfig(ttmw.LeaksConfig{Goroutines: mon}))
	step := make(chan struct{})
	done := make(chan struct{})
	defer close(done)
	var lineA int
	v.e.GET("/mover", func(c echo.Context) error {
		_, _, lineA, _ = runtime.Caller(0)
		go func() {
			for {
				select { // lineA+3
				case <-step:
				case <-done:
					return
				}
				select { // lineA+8
				case <-step:
				case <-done:
					return
				}
			}
		}()
		return c.NoContent(http.StatusOK)
	})
	v.start(t)
	v.do(t, http.MethodGet, "/mover", nil)
	clock.Advance(time.Second) // past Grace

	at := func(line int) {
		t.Helper()
		eventually(t, "the orphan at its next line", func() bool {
			clock.Advance(time.Second) // past Interval: check again
			o := mon.Check()
			return len(o) == 1 && o[0].Blocked.Line == line
		})
	}
	a, b := lineA+3, lineA+8
	at(a)
	step <- struct{}{}
	at(b)
	step <- struct{}{}
	at(a)
	var reportsAtA int
	for _, s := range v.rec.Ended() {
		if s.Name() == vocab.SpanGoroutineOrphaned && mustAttr(t, s, "code.line.number").AsInt64() == int64(a) {
			reportsAtA++
		}
	}
	if reportsAtA != 1 {
		t.Errorf("the same orphan, same stack, reported %d times, want once", reportsAtA)
	}
}

// A request the bounded history has forgotten still gets its Grace: a
// goroutine of it is not reported while the latest end time of the
// forgotten requests is less than Grace ago, and is reported, without an
// end time, once it is more.
func TestForgottenRequestStillGetsGrace(t *testing.T) {
	mon, clock := forgottenOrphan(t, 5*time.Second)
	clock.Advance(4 * time.Second)
	if o := mon.Check(); len(o) != 0 {
		t.Errorf("%d goroutine(s) reported within Grace of their request's end: %+v", len(o), o)
	}
	clock.Advance(2 * time.Second)
	if o := mon.Check(); len(o) != 1 || o[0].Route != "/orphan" || !o[0].RequestEnded.IsZero() {
		t.Errorf("past Grace: orphans %+v, want the /orphan goroutine without its end time", o)
	}
}

// nopConnector is a database/sql driver whose connections accept every
// statement and do nothing: database/sql's pool, the code under test, is
// real.
type nopConnector struct{}

func (nopConnector) Connect(context.Context) (driver.Conn, error) { return nopConn{}, nil }
func (c nopConnector) Driver() driver.Driver                      { return nopDriver{} }

type nopDriver struct{}

func (nopDriver) Open(string) (driver.Conn, error) { return nopConn{}, nil }

type nopConn struct{}

func (nopConn) Prepare(string) (driver.Stmt, error) {
	return nil, errors.New("nop driver: no prepared statements")
}
func (nopConn) Close() error              { return nil }
func (nopConn) Begin() (driver.Tx, error) { return nil, errors.New("nop driver: no transactions") }
func (nopConn) ExecContext(context.Context, string, []driver.NamedValue) (driver.Result, error) {
	return driver.RowsAffected(1), nil
}

// labelledRunning reports whether a goroutine carrying a request's labels
// has fn in its stack.
func labelledRunning(t *testing.T, fn string) bool {
	t.Helper()
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 1); err != nil {
		t.Fatal(err)
	}
	requests := func(labels map[string]string) bool { return labels["telltale.request"] != "" }
	for _, g := range goroutines.Parse(buf.Bytes(), requests) {
		for _, f := range g.Frames {
			if f.Function == fn {
				return true
			}
		}
	}
	return false
}

// onlyOrphan checks that orphans is the one goroutine of the test's own
// code that a handler left blocked.
func onlyOrphan(t *testing.T, orphans []ttmw.OrphanedGoroutine) {
	t.Helper()
	if len(orphans) != 1 || !strings.Contains(orphans[0].Function, t.Name()) {
		var fns []string
		for _, o := range orphans {
			fns = append(fns, o.Function)
		}
		t.Errorf("orphans started as %q, want the handler's goroutine of %s alone", fns, t.Name())
	}
}

// A library's long-lived worker that a request happens to start inherits
// the request's labels but runs none of the application's code: it is not
// an orphan. Here database/sql opens its pool in the first request, and its
// connection cleaner starts when that request's query puts a connection
// back into a pool with a maximum lifetime. A goroutine of the handler's
// own code, still blocked after the request, is reported by the same check.
func TestLazyDatabaseWorkersAreNotOrphans(t *testing.T) {
	var (
		open sync.Once
		db   *sql.DB
	)
	t.Cleanup(func() {
		if db != nil {
			_ = db.Close() // stops the cleaner and the opener
		}
	})
	onlyTheHandlersOrphan(t, "database/sql.(*DB).connectionCleaner", func(c echo.Context, release <-chan struct{}) error {
		open.Do(func() {
			db = sql.OpenDB(nopConnector{})
			db.SetConnMaxLifetime(time.Hour)
		})
		if _, err := db.ExecContext(c.Request().Context(), "UPDATE users SET seen = now() WHERE id = ?", c.Param("id")); err != nil {
			return err
		}
		go func() { <-release }() // the orphan
		return nil
	})
}

// An OpenTelemetry batch span processor created in a request runs its
// queue on a goroutine that inherits the request's labels and outlives it
// by design; it is not an orphan, while a goroutine of the handler's own
// code left blocked is.
func TestLazyBatchSpanProcessorIsNotAnOrphan(t *testing.T) {
	var (
		create sync.Once
		bsp    sdktrace.SpanProcessor
	)
	t.Cleanup(func() {
		if bsp != nil {
			_ = bsp.Shutdown(context.Background())
		}
	})
	onlyTheHandlersOrphan(t, "go.opentelemetry.io/otel/sdk/trace.(*batchSpanProcessor).processQueue", func(_ echo.Context, release <-chan struct{}) error {
		create.Do(func() { bsp = sdktrace.NewBatchSpanProcessor(tracetest.NewInMemoryExporter()) })
		go func() { <-release }() // the orphan
		return nil
	})
}

// onlyTheHandlersOrphan serves one request whose handler runs use, which
// starts a library's worker (the function worker) and leaves a goroutine of
// its own blocked on release; once the worker runs with the request's
// labels and the grace period is over, the check finds the handler's
// goroutine, and it alone.
func onlyTheHandlersOrphan(t *testing.T, worker string, use func(c echo.Context, release <-chan struct{}) error) {
	t.Helper()
	v := newEnv(t)
	mon := ttmw.NewGoroutineMonitor(ttmw.GoroutineMonitorConfig{TracerProvider: v.tp, Grace: time.Second})
	clock := newFakeClock(mon)
	v.e.Use(ttmw.LeaksWithConfig(ttmw.LeaksConfig{Goroutines: mon}))
	release := make(chan struct{})
	defer close(release)
	v.e.GET("/users/:id", func(c echo.Context) error {
		if err := use(c, release); err != nil {
			return err
		}
		return c.NoContent(http.StatusOK)
	})
	v.start(t)
	if code, body := v.do(t, http.MethodGet, "/users/1", nil); code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}

	eventually(t, "the labelled "+worker, func() bool { return labelledRunning(t, worker) })
	clock.Advance(2 * time.Second)
	onlyOrphan(t, mon.Check())
}

// The application's code is package main, the main module (in a test
// binary, the module under test) and AppPackages, each with the packages
// under it: a path is a prefix of a function name only when followed by
// '.' or '/'.
func TestApplicationCode(t *testing.T) {
	mon := ttmw.NewGoroutineMonitor(ttmw.GoroutineMonitorConfig{AppPackages: []string{" example.com/shared/ ", ""}})
	for fn, want := range map[string]bool{
		"main.main":                   true,
		"main.(*server).handle.func1": true,
		"github.com/telltale-go/telltale/middleware_test.F": true,
		"github.com/telltale-go/telltale.F":                 true,
		"example.com/shared.(*Cache).refresh":               true,
		"example.com/shared/db.Query":                       true,
		"github.com/telltale-go/telltale-extra.F":           false,
		"example.com/sharedlib.F":                           false,
		"maintenance.F":                                     false,
		"database/sql.(*DB).connectionCleaner":              false,
		"net/http.(*persistConn).readLoop":                  false,
		"":                                                  false,
	} {
		if got := ttmw.IsAppFunction(mon, fn); got != want {
			t.Errorf("%q is application code: %v, want %v", fn, got, want)
		}
	}
}

// A goroutine started directly on a library function runs none of the
// application's code and is not an orphan; once that library's package is
// listed in AppPackages, its functions are the application's, and the same
// goroutine is one, blocked at its innermost frame of that package.
func TestAppPackagesAreApplicationCode(t *testing.T) {
	for _, tc := range []struct {
		appPackages []string
		wantBlocked string // the orphan's innermost application frame; "" for no orphan
	}{
		{nil, ""},
		{[]string{"io/"}, "io.(*pipe).read"},
	} {
		t.Run(fmt.Sprintf("AppPackages=%q", tc.appPackages), func(t *testing.T) {
			v := newEnv(t)
			mon := ttmw.NewGoroutineMonitor(ttmw.GoroutineMonitorConfig{TracerProvider: v.tp, Grace: time.Second, AppPackages: tc.appPackages})
			clock := newFakeClock(mon)
			v.e.Use(ttmw.LeaksWithConfig(ttmw.LeaksConfig{Goroutines: mon}))
			pr, pw := io.Pipe()
			defer pw.Close()
			v.e.GET("/copy", func(c echo.Context) error {
				go io.Copy(io.Discard, pr) // blocked until the test ends
				return c.NoContent(http.StatusOK)
			})
			v.start(t)
			v.do(t, http.MethodGet, "/copy", nil)
			eventually(t, "the labelled io.Copy", func() bool { return labelledRunning(t, "io.Copy") })
			clock.Advance(2 * time.Second)

			orphans := mon.Check()
			switch {
			case tc.wantBlocked == "" && len(orphans) != 0:
				t.Errorf("orphans %+v, want none", orphans)
			case tc.wantBlocked != "" && (len(orphans) != 1 || orphans[0].Blocked.Function != tc.wantBlocked || orphans[0].Function != "io.Copy"):
				t.Errorf("orphans %+v, want io.Copy blocked in %s", orphans, tc.wantBlocked)
			}
		})
	}
}

// BenchmarkGoroutineMonitorCheck measures one goroutine check — a goroutine
// profile with labels, parsed — with 10 000 other goroutines parked, a
// thousand of them labelled as a request's (the check's cost grows with the
// number of goroutines, not with the orphans found).
//
//	go test -run '^$' -bench GoroutineMonitorCheck -benchmem ./middleware
func BenchmarkGoroutineMonitorCheck(b *testing.B) {
	const parked, labelled = 10_000, 1_000
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardExporter{}))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	mon := ttmw.NewGoroutineMonitor(ttmw.GoroutineMonitorConfig{TracerProvider: tp, Interval: time.Nanosecond})

	release := make(chan struct{})
	var wg sync.WaitGroup
	for range parked - labelled {
		wg.Go(func() { <-release })
	}
	// Labelled goroutines, as the Leaks middleware leaves on a request that
	// is still running.
	e := echo.New()
	e.Use(ttmw.LeaksWithConfig(ttmw.LeaksConfig{Goroutines: mon}))
	started := make(chan struct{}, labelled)
	e.GET("/work", func(c echo.Context) error {
		started <- struct{}{}
		<-release
		return nil
	})
	for range labelled {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, "http://api.example/work", nil)
			e.ServeHTTP(&discardWriter{H: make(http.Header)}, req)
		})
	}
	for range labelled {
		<-started
	}
	b.Cleanup(func() { close(release); wg.Wait() })

	b.ReportAllocs()
	for b.Loop() {
		mon.Check()
	}
}

// memoryUpstream answers at once, in memory, with a small body.
type memoryUpstream struct{}

func (memoryUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: io.NopCloser(strings.NewReader(`{"items":[]}`)), ContentLength: 12, Request: r}, nil
}

// A monitor remembers an ended request in little memory — not the request,
// its headers or its connection — and, for an unsampled one, what it takes
// to export its trace should an orphan of it be found: the figures
// DefaultEndedRequestHistory documents hold for a healthy request, for
// one that made calls, in an outage (every request leaks, the budget
// refuses them: they keep nothing then), and once a check has passed.
func TestMonitorHistoryMemory(t *testing.T) {
	const requests = 3000
	type regime struct {
		name  string
		calls int
		leak  bool
		check bool
		limit float64 // bytes per request
	}
	heap := func(r regime, history int) uint64 {
		tp := sampling.NewTracerProvider(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0)),
			sampling.WithBudget(1), sampling.WithLogger(slog.New(slog.DiscardHandler)))
		defer tp.Shutdown(context.Background())
		tr := transport.New(memoryUpstream{}, transport.WithTracerProvider(tp), transport.WithLogger(slog.New(slog.DiscardHandler)))
		defer tr.Close()
		client := tr.Client()
		mon := ttmw.NewGoroutineMonitor(ttmw.GoroutineMonitorConfig{TracerProvider: tp, History: history, Grace: time.Nanosecond})
		e := echo.New()
		e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: tp, Logger: slog.New(slog.DiscardHandler)}))
		e.Use(ttmw.LeaksWithConfig(ttmw.LeaksConfig{Goroutines: mon}))
		e.POST("/x", func(c echo.Context) error {
			for range r.calls {
				req, _ := http.NewRequestWithContext(c.Request().Context(), http.MethodGet, "http://upstream.test/items?page=1", nil)
				resp, err := client.Do(req)
				if err != nil {
					return err
				}
				if !r.leak {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
			return c.NoContent(http.StatusOK)
		})
		big := strings.Repeat("a", 1000)
		for range requests {
			req := httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(strings.Repeat("b", 100)))
			req.Header.Set("X-Big", big)
			e.ServeHTTP(httptest.NewRecorder(), req)
		}
		if r.check {
			mon.Check()
		}
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		runtime.KeepAlive(mon)
		return ms.HeapAlloc
	}
	for _, r := range []regime{
		{name: "healthy", limit: 1536},
		{name: "healthy, 3 calls", calls: 3, limit: 1536 + 3*1280},
		{name: "outage: 3 leaked bodies each, refused", calls: 3, leak: true, limit: 1536},
		{name: "healthy, 3 calls, after a check", calls: 3, check: true, limit: 384},
	} {
		t.Run(r.name, func(t *testing.T) {
			small, full := heap(r, 32), heap(r, 0)
			per := (float64(full) - float64(small)) / requests
			t.Logf("%s: %.0f bytes per unsampled request in the history", r.name, per)
			if per > r.limit {
				t.Errorf("the history keeps %.0f bytes per request, want at most %.0f", per, r.limit)
			}
		})
	}
}
