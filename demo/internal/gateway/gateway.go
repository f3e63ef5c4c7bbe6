package gateway

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/demo/internal/telemetry"
	"github.com/telltale-go/telltale/demo/internal/upstream"
)

// Routes served by every gateway.
const (
	// FeedPath fans out to every upstream and merges their items.
	FeedPath = "/api/feed"
	// CountPath reads one header of the articles upstream, and leaks its body.
	CountPath = "/api/count"
	// StatsPath serves [Stats] as JSON; ?since=N limits findings to Seq > N,
	// ?overruns_since=N the largest overrun to those after the N-th, ?gc=1
	// collects garbage first, ?traces=1 adds the spans ended since the
	// previous ?traces=1, by trace.
	StatsPath = "/debug/demo/stats"
	// FlushPath (POST) flushes the tracer provider.
	FlushPath = "/debug/demo/flush"
)

// Response headers set by every gateway, read by the load driver.
const (
	// TraceIDHeader carries the trace id of the request's server span.
	TraceIDHeader = "X-Trace-Id"
	// MissingHeader lists the optional upstreams left out of a partial feed.
	MissingHeader = "X-Feed-Missing"
)

// Upstream is one service the gateways call.
type Upstream struct {
	// Name names the service in the feed ("articles", "users", "ads").
	Name string
	// URL is its base URL.
	URL string
	// Optional upstreams may be left out of a feed; a required one failing
	// fails the request.
	Optional bool
}

// UpstreamNames are the services each gateway calls, in order; only the
// first is required.
var UpstreamNames = []string{"articles", "users", "ads"}

// StartUpstreams starts one upstream for each of [UpstreamNames], all
// healthy. If one fails to start, those already started are closed.
func StartUpstreams(cfg upstream.Config) ([]*upstream.Server, error) {
	var servers []*upstream.Server
	for _, name := range UpstreamNames {
		s, err := upstream.Start(name, cfg)
		if err != nil {
			for _, started := range servers {
				_ = started.Close()
			}
			return nil, err
		}
		servers = append(servers, s)
	}
	return servers, nil
}

// Describe returns the [Config.Upstreams] of servers started by
// [StartUpstreams]: the first is required, the others optional.
func Describe(servers []*upstream.Server) []Upstream {
	out := make([]Upstream, len(servers))
	for i, s := range servers {
		out[i] = Upstream{Name: s.Name(), URL: s.URL(), Optional: i > 0}
	}
	return out
}

// Feed is the answer of [FeedPath].
type Feed struct {
	// Parts maps an upstream name to its items.
	Parts map[string][]upstream.Item `json:"parts"`
	// Missing lists the optional upstreams that did not answer in time.
	Missing []string `json:"missing,omitempty"`
}

// Count is the answer of [CountPath].
type Count struct {
	// Articles is the articles upstream's item count, from its header.
	Articles string `json:"articles"`
}

// ErrBodyTooLarge is returned for an upstream body over the guarded
// gateway's limit.
var ErrBodyTooLarge = errors.New("gateway: upstream body too large")

// Config configures a gateway: the naive one (with or without its first
// fix) or the guarded one.
type Config struct {
	// Upstreams are called by [FeedPath]; the first one is also the one
	// [CountPath] calls.
	Upstreams []Upstream
	// TracerProvider receives the gateway's spans; nil means the global one.
	TracerProvider trace.TracerProvider
	// Recorder is served by [StatsPath]; nil serves no span counts.
	Recorder *telemetry.Recorder
	// Flush is called by [FlushPath]; nil does nothing.
	Flush func() error
	// Anomalies, for the guarded gateway, are the counters of telltale's
	// sampler, served by [StatsPath]; nil serves none.
	Anomalies *telemetry.AnomalyCounter
	// Probe, if set, measures the process's scheduling delays for
	// [StatsPath].
	Probe *Probe
	// TraceURL, for the guarded gateway, makes the trace ids of its
	// inspector links into a trace UI: a URL in which {trace_id} stands for
	// the id. Empty shows plain ids.
	TraceURL string
	// FirstFix, for the naive gateway only, races its feed's fan-out
	// against time.After(FirstFix) (the incident's first fix,
	// [FirstFixTimeout]); zero keeps the original, which waits for every
	// upstream however long.
	FirstFix time.Duration
	// Echo, for the guarded gateway only, is the Echo major it runs on:
	// [EchoV5] (the default, when empty) or [EchoV4].
	Echo string
}

// Stats is what [StatsPath] returns.
type Stats struct {
	// Goroutines is runtime.NumGoroutine().
	Goroutines int `json:"goroutines"`
	// HeapInuse is the heap in use, in bytes.
	HeapInuse uint64 `json:"heap_inuse"`
	// CPU is what the process got of the CPUs.
	CPU CPU `json:"cpu"`
	// Spans are the recorder's counts and findings.
	Spans telemetry.Snapshot `json:"spans"`
	// Anomalies are the totals of telltale's sampler (guarded only).
	Anomalies *telemetry.AnomalyCounts `json:"anomalies,omitempty"`
	// Transport holds telltale's transport statistics (guarded only).
	Transport any `json:"transport,omitempty"`
	// Traces are the spans ended since the previous call that asked for
	// them, by trace id.
	Traces map[string]telemetry.TraceSpans `json:"traces,omitempty"`
}

// statsHandler serves [StatsPath] and [FlushPath].
func statsHandler(cfg Config, transport func() any) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+StatsPath, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("gc") == "1" {
			runtime.GC()
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		st := Stats{Goroutines: runtime.NumGoroutine(), HeapInuse: ms.HeapInuse, CPU: readCPU(cfg.Probe)}
		if cfg.Recorder != nil {
			since, _ := strconv.ParseInt(r.URL.Query().Get("since"), 10, 64)
			overrunsSince, _ := strconv.ParseInt(r.URL.Query().Get("overruns_since"), 10, 64)
			st.Spans = cfg.Recorder.Snapshot(since, overrunsSince)
			if r.URL.Query().Get("traces") == "1" {
				st.Traces = cfg.Recorder.DrainTraces()
			}
		}
		if cfg.Anomalies != nil {
			if n, err := cfg.Anomalies.Counts(r.Context()); err == nil {
				st.Anomalies = &n
			}
		}
		if transport != nil {
			st.Transport = transport()
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc("POST "+FlushPath, func(w http.ResponseWriter, _ *http.Request) {
		if cfg.Flush != nil {
			if err := cfg.Flush(); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

// withDebug routes the /debug/demo/ paths to the stats handler, everything
// else to app.
func withDebug(app http.Handler, debug http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/debug/demo/") {
			debug.ServeHTTP(w, r)
			return
		}
		app.ServeHTTP(w, r)
	})
}

// traceIDHeader exposes the server span's trace id, so the load driver can
// tell which trace to open in Jaeger for any request.
func traceIDHeader(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if sc := trace.SpanContextFromContext(c.Request().Context()); sc.HasTraceID() {
			c.Response().Header().Set(TraceIDHeader, sc.TraceID().String())
		}
		return next(c)
	}
}

// itemsURL is where up serves its document.
func itemsURL(up Upstream) string { return up.URL + upstream.ItemsPath }

// MaxBody bounds what the guarded gateway decodes from one upstream: past
// it, the upstream is left out of a partial answer.
const MaxBody = 1 << 20

// limitedReader fails with [ErrBodyTooLarge] past n bytes, where
// io.LimitReader would report a silent EOF and a truncated document.
type limitedReader struct {
	r io.Reader
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, ErrBodyTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// answerMargin is the part of the request deadline the guarded feed keeps
// for itself to answer with what arrived.
const answerMargin = 100 * time.Millisecond
