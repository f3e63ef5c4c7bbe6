package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/internal/anomaly"
	"github.com/telltale-go/telltale/internal/appcode"
	"github.com/telltale-go/telltale/internal/goroutines"
	"github.com/telltale-go/telltale/internal/version"
	"github.com/telltale-go/telltale/transport"
	"github.com/telltale-go/telltale/vocab"
)

// Defaults of [GoroutineMonitorConfig].
const (
	// DefaultGoroutineCheckInterval is the least time between two goroutine
	// checks. A check takes a goroutine profile, which briefly stops the
	// world, then parses the labelled goroutines; its cost grows with the
	// number of goroutines in the process (the README gives figures), so
	// the interval bounds the share of a CPU the monitor takes.
	DefaultGoroutineCheckInterval = 10 * time.Second

	// DefaultGoroutineGrace is how long a goroutine may outlive its request
	// before it counts as orphaned: enough for deferred clean-up to finish.
	DefaultGoroutineGrace = time.Second

	// DefaultMaxOrphanReports caps the spans one check reports, so that a
	// handler leaking thousands of goroutines costs a bounded amount.
	DefaultMaxOrphanReports = 100

	// DefaultEndedRequestHistory is how many ended requests a monitor
	// remembers to describe their orphans: their route, span and end time,
	// under 400 bytes each, 6 MiB at the default. Until the first check
	// after its Grace — the one that finds its orphans, if it has any — an
	// unsampled request also keeps what it takes to export its trace then:
	// under 1.5 KiB, plus under 1.25 KiB per outbound call it made until it
	// is exported or refused (an outage keeps no more).
	// TestMonitorHistoryMemory measures each.
	DefaultEndedRequestHistory = 16384
)

// ignoredGoroutines are goroutines that a request starts legitimately and
// that outlive it by design: net/http's pooled client connections and the
// server's read-ahead of the next request. Most of the time they run no
// application code, and so are no orphans anyway; they are listed for the
// times they do: reading from a net.Conn the application wraps, in its dial
// function, or reading its request body.
var ignoredGoroutines = [...]string{
	"net/http.(*persistConn).readLoop",
	"net/http.(*persistConn).writeLoop",
	"net/http.(*Transport).dialConnFor",
	"net/http.(*Transport).startDialConnForLocked",
	"net/http.(*connReader).backgroundRead",
	"net/http.(*http2ClientConn).readLoop",
	"net/http.(*http2serverConn)",
	"golang.org/x/net/http2.(*ClientConn).readLoop",
	"golang.org/x/net/http2.(*serverConn)",
}

// GoroutineMonitorConfig configures a [GoroutineMonitor].
type GoroutineMonitorConfig struct {
	// TracerProvider provides the tracer of the orphaned-goroutine spans.
	// The global provider is used when nil.
	TracerProvider trace.TracerProvider

	// Interval is the least time between two checks, and the period of the
	// checks [GoroutineMonitor.Start] runs. Zero means
	// [DefaultGoroutineCheckInterval].
	Interval time.Duration

	// Grace is how long a goroutine may run after its request ended before
	// it is reported. Zero means [DefaultGoroutineGrace].
	Grace time.Duration

	// AppPackages are package paths ("example.com/shared") whose functions
	// count as the application's own code, besides those of the main
	// module and package main: the other modules of a service split over
	// several. A path covers the packages under it. Only a goroutine that
	// runs application code can be an orphan; see [GoroutineMonitor].
	AppPackages []string

	// IgnoreFunctions are function-name prefixes ("example.com/app/audit.")
	// of goroutines that are meant to outlive their request: a goroutine
	// with such a frame anywhere in its stack is never reported. Use it for
	// the application's own workers that a request may start, such as a
	// cache refresher started by a sync.Once. net/http's connection
	// goroutines are always ignored.
	IgnoreFunctions []string

	// MaxReports caps the spans one check reports. Zero means
	// [DefaultMaxOrphanReports].
	MaxReports int

	// History is how many ended requests are remembered. Zero means
	// [DefaultEndedRequestHistory]. An orphan of a forgotten request is
	// still reported, without its route and end time.
	History int
}

// A GoroutineMonitor finds goroutines that outlived the request that started
// them — the incident's fourth bug: a handler answers after its timeout, and
// the goroutines it fanned out to keep calling upstreams — and reports each
// group of them (same request, same stack) once, as a span in the trace of
// that request, carrying their stack.
//
// The [Leaks] middleware registers each request with the monitor and labels
// the handler's goroutine with runtime/pprof labels naming the request; the
// goroutines it starts inherit them. A check reads the goroutine profile and
// looks for labelled goroutines whose request ended more than Grace ago.
//
// Such a goroutine is an orphan only if its stack holds at least one frame
// of the application's own code: a function of the main module (the module
// path in [runtime/debug.ReadBuildInfo]; in a test binary, the module under
// test), of package main, or of a package under one of AppPackages. A
// request also starts goroutines of libraries that are meant to outlive it
// and inherit its labels all the same: database/sql's connection cleaner,
// started when the first query returns a connection to a pool with a
// maximum lifetime; the queue of an OpenTelemetry batch span processor
// created in a handler; any pool or client that starts its worker lazily.
// They run no application code and are not reported. Two consequences
// follow. A goroutine started directly on a library function, as go
// http.Get(u), is not reported either: nothing of the application is in
// its stack. And the application's own worker started lazily by a request
// is reported, unless IgnoreFunctions names it. In a binary without build
// information, only package main and AppPackages are the application's.
// The runtime keeps the innermost 128 frames of a stack in the profile; an
// application frame below those does not count.
//
// Checks run at most once per Interval, whoever asks: [GoroutineMonitor.Start]
// runs them periodically, [GoroutineMonitor.Check] on demand, [Inspector] when
// its page is viewed. Per request the monitor costs a map insert and delete
// under one of 32 locks, and remembers the request for a while (see
// [DefaultEndedRequestHistory]).
//
// A GoroutineMonitor is safe for concurrent use. Use one per process; create
// it with [NewGoroutineMonitor].
type GoroutineMonitor struct {
	tracer      trace.Tracer
	interval    time.Duration
	grace       time.Duration
	ignore      []string
	app         []string // package paths of the application's code
	maxReports  int
	historySize int
	now         func() time.Time // the monitor's clock: time.Now but in tests

	id     string // the value of labelMonitor, telling our goroutines from another monitor's
	seq    atomic.Uint64
	shards [monitorShards]requestShard

	mu        sync.Mutex // one check at a time
	lastCheck time.Time
	orphans   []OrphanedGoroutine
	reported  map[string]bool

	startOnce, stopOnce sync.Once
	stop, stopped       chan struct{}
	started             atomic.Bool
}

const monitorShards = 32

type requestShard struct {
	mu    sync.Mutex
	live  map[uint64]requestInfo
	ended map[uint64]requestInfo
	order []uint64 // ring of ended ids, bounded by the history
	next  int      // where the next ended id goes in order
	// evicted is when the last forgotten request ended: every forgotten
	// request of the shard ended no later.
	evicted time.Time
	_       [32]byte
}

// requestInfo is what a monitor knows of a request.
type requestInfo struct {
	route string
	span  trace.SpanContext
	req   *anomaly.Request // the request, when it is kept for a replay: its orphans are exported with it
	ended time.Time
}

// An OrphanedGoroutine is a group of goroutines with the same stack, started
// by the same request, still running after it ended.
type OrphanedGoroutine struct {
	// Request is the request's id (the telltale.request pprof label).
	Request string `json:"request"`
	// Route is the route template of the request, as its router gives it
	// (Echo's "/users/:id", Go's "GET /users/{id}").
	Route string `json:"route"`
	// TraceID and SpanID name the request's server span, when traced.
	TraceID string `json:"trace_id,omitempty"`
	SpanID  string `json:"span_id,omitempty"`
	// Count is how many goroutines share this stack.
	Count int `json:"count"`
	// Function is the goroutine's own function: the bottom of its stack.
	Function string `json:"function"`
	// Blocked is where the goroutine is now: its innermost frame of
	// application code.
	Blocked transport.CallSite `json:"blocked_at"`
	// Stack is the goroutine's stack, one "function\n\tfile:line" per frame.
	Stack string `json:"stack"`
	// RequestEnded is when the request ended; zero when forgotten.
	RequestEnded time.Time `json:"request_ended,omitzero"`
}

// NewGoroutineMonitor returns a monitor with the given config; zero fields
// take their defaults, negative ones too. It starts no goroutine: call
// [GoroutineMonitor.Start] for periodic checks.
func NewGoroutineMonitor(cfg GoroutineMonitorConfig) *GoroutineMonitor {
	tp := cfg.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	m := &GoroutineMonitor{
		tracer:      tp.Tracer(version.MiddlewareScope, trace.WithInstrumentationVersion(version.Version)),
		interval:    orDefault(cfg.Interval, DefaultGoroutineCheckInterval),
		grace:       orDefault(cfg.Grace, DefaultGoroutineGrace),
		maxReports:  cfg.MaxReports,
		historySize: cfg.History,
		now:         time.Now,
		reported:    make(map[string]bool),
		stop:        make(chan struct{}),
		stopped:     make(chan struct{}),
	}
	if m.maxReports <= 0 {
		m.maxReports = DefaultMaxOrphanReports
	}
	if m.historySize <= 0 {
		m.historySize = DefaultEndedRequestHistory
	}
	m.app = []string{"main"}
	if mod := appcode.MainModule(); mod != "" {
		m.app = append(m.app, mod)
	}
	for _, p := range cfg.AppPackages {
		if p = strings.TrimRight(strings.TrimSpace(p), "/."); p != "" {
			m.app = append(m.app, p)
		}
	}
	m.ignore = append(m.ignore, ignoredGoroutines[:]...)
	for _, p := range cfg.IgnoreFunctions {
		if p = strings.TrimSpace(p); p != "" {
			m.ignore = append(m.ignore, p)
		}
	}
	var id [6]byte
	_, _ = rand.Read(id[:])
	m.id = hex.EncodeToString(id[:])
	for i := range m.shards {
		m.shards[i].live = make(map[uint64]requestInfo)
		m.shards[i].ended = make(map[uint64]requestInfo)
	}
	return m
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Start runs a check every Interval in one goroutine, until
// [GoroutineMonitor.Stop]. Calling it again does nothing.
func (m *GoroutineMonitor) Start() {
	m.startOnce.Do(func() {
		m.started.Store(true)
		go m.loop()
	})
}

// Stop stops the goroutine of [GoroutineMonitor.Start] and waits for it to
// return. It is idempotent and safe without Start.
func (m *GoroutineMonitor) Stop() {
	m.stopOnce.Do(func() {
		close(m.stop)
		if m.started.Load() {
			<-m.stopped
		}
	})
}

func (m *GoroutineMonitor) loop() {
	defer close(m.stopped)
	tick := time.NewTicker(m.interval)
	defer tick.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-tick.C:
			m.Check()
		}
	}
}

// begin registers a request and returns its id. req is the request's
// state, if traced.
func (m *GoroutineMonitor) begin(route string, span trace.SpanContext, req *anomaly.Request) uint64 {
	id := m.seq.Add(1)
	info := requestInfo{route: route, span: span}
	if req != nil && req.Replayable() {
		info.req = req
	}
	s := &m.shards[id%monitorShards]
	s.mu.Lock()
	s.live[id] = info
	s.mu.Unlock()
	return id
}

// end marks the request as ended, from now; route is its route template if
// it was learnt only during the request.
func (m *GoroutineMonitor) end(id uint64, route string) {
	now := m.now()
	s := &m.shards[id%monitorShards]
	limit := max(m.historySize/monitorShards, 1)
	s.mu.Lock()
	info := s.live[id]
	delete(s.live, id)
	info.ended = now
	if route != "" {
		info.route = route
	}
	if len(s.order) < limit {
		s.order = append(s.order, id)
	} else {
		s.evicted = s.ended[s.order[s.next]].ended
		delete(s.ended, s.order[s.next]) // forget the oldest
		s.order[s.next] = id
		s.next = (s.next + 1) % limit
	}
	s.ended[id] = info
	s.mu.Unlock()
}

// lookup says whether the request is still running and what is known of it.
// For a forgotten request, info.ended is the latest time it can have ended.
func (m *GoroutineMonitor) lookup(id uint64) (info requestInfo, live, known bool) {
	s := &m.shards[id%monitorShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	if info, ok := s.live[id]; ok {
		return info, true, true
	}
	info, ok := s.ended[id]
	if !ok {
		info.ended = s.evicted
	}
	return info, false, ok
}

// Orphans returns the orphaned goroutines found by the last check, without
// checking.
func (m *GoroutineMonitor) Orphans() []OrphanedGoroutine {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.orphans)
}

// LastCheck returns when the last check ran; zero if none has.
func (m *GoroutineMonitor) LastCheck() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastCheck
}

// Check looks for orphaned goroutines and returns them, reporting each group
// not reported before as a span: a child of the request's server span, so
// that it shows in that request's trace, and linked to it, named
// vocab.SpanGoroutineOrphaned, with status Error, the goroutine's stack
// (code.stacktrace) and where it is blocked (code.function.name,
// code.file.path, code.line.number). If the last check ran less than
// Interval ago, Check returns its result instead of checking again.
func (m *GoroutineMonitor) Check() []OrphanedGoroutine {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if !m.lastCheck.IsZero() && now.Sub(m.lastCheck) < m.interval {
		return slices.Clone(m.orphans)
	}
	m.lastCheck = now

	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 1); err != nil {
		return slices.Clone(m.orphans)
	}
	var orphans []OrphanedGoroutine
	seen := make(map[string]bool)
	reports := 0
	var held map[uint64]bool // requests with an orphan not reported yet
	ours := func(labels map[string]string) bool { return labels[labelMonitor] == m.id }
	for _, g := range goroutines.Parse(buf.Bytes(), ours) {
		if !m.runsApp(g) || m.ignored(g) {
			continue
		}
		id, err := strconv.ParseUint(g.Labels[labelRequest], 10, 64)
		if err != nil {
			continue
		}
		info, live, known := m.lookup(id)
		if live || now.Sub(info.ended) < m.grace {
			continue
		}
		o := m.orphan(g, info, known)
		orphans = append(orphans, o)
		key := o.Request + "\x00" + o.Stack
		seen[o.Request] = true
		switch {
		case m.reported[key]:
		case reports < m.maxReports:
			m.report(o, info, now)
			reports++
			m.reported[key] = true
		default:
			// Held back by MaxReports: reported by a later check, which
			// needs what the request keeps to export it.
			if held == nil {
				held = make(map[uint64]bool)
			}
			held[id] = true
		}
	}
	for key := range m.reported {
		if req, _, _ := strings.Cut(key, "\x00"); !seen[req] {
			delete(m.reported, key) // the request has no orphan left: forget it
		}
	}
	m.orphans = orphans
	m.forgetReplays(now, held)
	return slices.Clone(orphans)
}

// forgetReplays lets go of what the requests ended more than Grace before
// the check at now keep to be exported: this check found their orphans, if
// they had any, and a goroutine that was not running now cannot become
// one of theirs — but for the requests held, whose orphans MaxReports
// held back for a later check. Their ids and routes stay in the history.
func (m *GoroutineMonitor) forgetReplays(now time.Time, held map[uint64]bool) {
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		for id, info := range s.ended {
			if info.req != nil && now.Sub(info.ended) >= m.grace && !held[id] {
				info.req = nil
				s.ended[id] = info
			}
		}
		s.mu.Unlock()
	}
}

// runsApp reports whether the group's stack holds a frame of the
// application's code: only then can it be an orphan.
func (m *GoroutineMonitor) runsApp(g goroutines.Group) bool {
	for _, f := range g.Frames {
		if m.isApp(f.Function) {
			return true
		}
	}
	return false
}

// isApp reports whether fn, a package-path-qualified function name, is of
// one of the application's packages or the packages under them.
func (m *GoroutineMonitor) isApp(fn string) bool {
	for _, p := range m.app {
		if appcode.InPackage(fn, p) {
			return true
		}
	}
	return false
}

func (m *GoroutineMonitor) ignored(g goroutines.Group) bool {
	for _, f := range g.Frames {
		for _, p := range m.ignore {
			if strings.HasPrefix(f.Function, p) {
				return true
			}
		}
	}
	return false
}

func (m *GoroutineMonitor) orphan(g goroutines.Group, info requestInfo, known bool) OrphanedGoroutine {
	o := OrphanedGoroutine{
		Request: g.Labels[labelRequest],
		Route:   g.Labels[labelRoute],
		TraceID: g.Labels[labelTraceID],
		Count:   g.Count,
	}
	if known {
		o.RequestEnded = info.ended
		if info.route != "" {
			o.Route = info.route
		}
		if info.span.IsValid() {
			o.TraceID, o.SpanID = info.span.TraceID().String(), info.span.SpanID().String()
		}
	}
	var stack strings.Builder
	for _, f := range g.Frames {
		fmt.Fprintf(&stack, "%s\n\t%s:%d\n", f.Function, f.File, f.Line)
		if o.Blocked.File == "" && m.isApp(f.Function) {
			o.Blocked = transport.CallSite{Function: f.Function, File: f.File, Line: f.Line}
		}
	}
	o.Stack = stack.String()
	if n := len(g.Frames); n > 0 {
		o.Function = g.Frames[n-1].Function
	}
	return o
}

func (m *GoroutineMonitor) report(o OrphanedGoroutine, info requestInfo, now time.Time) {
	sc := info.span
	attrs := []attribute.KeyValue{
		attribute.Bool(vocab.AttrAnomaly, true),
		attribute.Int(vocab.AttrGoroutineCount, o.Count),
		attribute.String(vocab.AttrGoroutineRequest, o.Request),
		semconv.HTTPRoute(routePath(o.Route)),
		semconv.CodeFunctionName(o.Blocked.Function),
		semconv.CodeFilePath(o.Blocked.File),
		semconv.CodeLineNumber(o.Blocked.Line),
		semconv.CodeStacktrace(o.Stack),
	}
	if !o.RequestEnded.IsZero() {
		attrs = append(attrs, attribute.Int64(vocab.AttrGoroutineEndedAgo, now.Sub(o.RequestEnded).Milliseconds()))
	}
	opts := []trace.SpanStartOption{trace.WithAttributes(attrs...), trace.WithTimestamp(now)}
	if sc.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
	}
	status := fmt.Sprintf("%d goroutine(s) of %s still running after the request ended, started as %s, now at %s",
		o.Count, o.Route, o.Function, o.Blocked)
	if req := info.req; req != nil {
		// The request was not sampled: its spans are exported with this
		// one, so that the orphan has its parent in the trace — if the
		// request is, or was, admitted.
		tracer := req.TracerProvider().Tracer(version.MiddlewareScope, trace.WithInstrumentationVersion(version.Version))
		site := o.Blocked.File + ":" + strconv.Itoa(o.Blocked.Line)
		req.Late(anomaly.KindOrphan, site, func(base context.Context, d *anomaly.Decision, parent trace.SpanContext) {
			self := trace.NewSpanContext(trace.SpanContextConfig{TraceID: parent.TraceID(), SpanID: anomaly.RandomSpanID()})
			span, _ := anomaly.Start(tracer, base, d, parent, self, vocab.SpanGoroutineOrphaned, opts...)
			if span != nil {
				span.SetAttributes(attribute.Bool(vocab.AttrReplayed, true))
				span.SetStatus(codes.Error, status)
				span.End(trace.WithTimestamp(now))
			}
		})
		return
	}
	ctx := context.Background()
	if sc.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	_, span := m.tracer.Start(ctx, vocab.SpanGoroutineOrphaned, opts...)
	span.SetStatus(codes.Error, status)
	span.End(trace.WithTimestamp(now))
}
