package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/telltale-go/telltale/demo/internal/gateway"
	"github.com/telltale-go/telltale/demo/internal/jaeger"
	"github.com/telltale-go/telltale/demo/internal/upstream"
	"github.com/telltale-go/telltale/vocab"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// result mirrors the fields of the demo's -json output the test reads: one
// scenario.
type result struct {
	Name     string          `json:"name"`
	Gateways []gatewayResult `json:"gateways"`
	Fleet    []fleetCount    `json:"fleet"`
}

// gatewayResult is one gateway's part of a [result].
type gatewayResult struct {
	Gateway string `json:"gateway"`
	Service string `json:"service"`
	Summary struct {
		Requests     int           `json:"requests"`
		OK           int           `json:"ok"`
		Errors       int           `json:"errors"`
		Max          time.Duration `json:"max_ns"`
		InFlightPeak int           `json:"in_flight_peak"`
	} `json:"summary"`
	Partial           int           `json:"partial"`
	TraceIDs          []string      `json:"trace_ids"`
	Anomalous         int           `json:"anomalous"`
	AnomalousTraceIDs []string      `json:"anomalous_trace_ids"`
	Outage            time.Duration `json:"outage_ns"`
	Jaeger            *struct {
		AnomalousLooked int `json:"anomalous_looked"`
		AnomalousFound  int `json:"anomalous_found"`
	} `json:"jaeger"`
}

// fleetCount is what the fleet kept of one service's traces in one
// scenario, as the demo counted it.
type fleetCount struct {
	Service        string `json:"service"`
	AnomalousSent  int    `json:"anomalous_sent"`
	AnomalousKept  int    `json:"anomalous_kept"`
	AnomalousWhole int    `json:"anomalous_whole"`
	HealthySent    int    `json:"healthy_sent"`
	HealthyKept    int    `json:"healthy_kept"`
	HealthyWhole   int    `json:"healthy_whole"`
}

// results are a demo run's, one per scenario.
type results []result

// gateway returns the result of gateway gw in scenario sc.
func (rs results) gateway(t *testing.T, sc, gw string) gatewayResult {
	t.Helper()
	for _, r := range rs {
		for _, g := range r.Gateways {
			if r.Name == sc && g.Gateway == gw {
				return g
			}
		}
	}
	t.Fatalf("%s/%s: not in the results", sc, gw)
	return gatewayResult{}
}

// sample is the head-sampling ratio the demo runs with here: production's.
const sample = "0.01"

// requests is the load of each gateway in each scenario; twinRequests the
// load of the run at -sample 1 whose traces the replays are compared
// with; fleetRequests the load of the fleet run, enough healthy traces for
// a 10 % share to be told from all and from none.
const (
	requests      = 30
	twinRequests  = 10
	fleetRequests = 60
)

// The scenarios of the main run, and those in which every request of the
// guarded gateway is anomalous (a partial feed, or the leaking route).
var (
	mainScenarios      = []string{"leak", "dead", "5xx", "slow", "blackhole", "huge"}
	anomalousScenarios = []string{"leak", "dead", "5xx", "blackhole", "huge"}
)

// guardedService is the guarded gateway's service.name.
const guardedService = "gateway-guarded"

func TestE2E(t *testing.T) {
	if os.Getenv("TELLTALE_E2E") != "1" {
		t.Skip("e2e: set TELLTALE_E2E=1 to run it against the real Jaeger (make -C demo e2e, which builds Jaeger first)")
	}
	began := time.Now()
	dir, err := jaeger.Dir()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(jaeger.Binary(dir)); err != nil {
		t.Fatal("e2e: the Jaeger binary is not built (" + jaeger.Binary(dir) + "); run `make -C demo e2e`, which builds it (about 4 minutes the first time)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	tmp := t.TempDir()

	// The all-in-one Jaeger, with the official UI when its build is here
	// (for the screenshot); or one already running on the demo's ports.
	var aio *jaeger.Process
	ui := uiDir(dir)
	if jaeger.Healthy(ctx) {
		t.Log("a Jaeger already runs on the demo's ports: using it (traces are looked up by id); the fleet subtest is skipped")
	} else {
		var opts []jaeger.Option
		if ui != "" {
			opts = append(opts, jaeger.WithUI(ui))
		}
		aio, err = jaeger.Start(ctx, dir, filepath.Join(tmp, "jaeger.log"), opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = aio.Stop() })
	}

	// The demo binary, run as users run it: it finds the Jaeger above
	// healthy, sends its traces there and checks them itself too.
	demo := filepath.Join(tmp, "demo")
	build := exec.CommandContext(ctx, "go", "build", "-o", demo, "../cmd/demo")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/demo: %v\n%s", err, out)
	}
	runLogs := filepath.Join(tmp, "run")
	all := runDemo(ctx, t, demo, runLogs, "-sample", sample,
		"-scenario", strings.Join(mainScenarios, ","), "-requests", strconv.Itoa(requests), "-rps", "30", "-settle", "2s")
	// The sampled twins of the replays: the same scenarios, every trace
	// kept at the head.
	twins := runDemo(ctx, t, demo, filepath.Join(tmp, "twins"), "-sample", "1", "-gateways", "guarded",
		"-scenario", "dead,huge", "-requests", strconv.Itoa(twinRequests), "-rps", "30", "-settle", "1s")

	jc := &jaeger.Client{HTTP: &http.Client{Timeout: 10 * time.Second}}
	t.Cleanup(jc.HTTP.CloseIdleConnections)
	leakFile, leakLineNo := leakLine(t, "../internal/gateway/guarded.go")

	// Every guarded request's trace of the main run, by scenario, fetched
	// once for the checks below.
	guarded := map[string][]jaeger.Trace{}
	for _, sc := range mainScenarios {
		for _, id := range all.gateway(t, sc, "guarded").TraceIDs {
			if tr, ok := lookup(ctx, t, jc, id, 15*time.Second); ok {
				guarded[sc] = append(guarded[sc], tr)
			}
		}
	}

	// The first sampled twin of each scenario of the twin run.
	twinTraces := map[string]jaeger.Trace{}
	for _, sc := range []string{"dead", "huge"} {
		ids := twins.gateway(t, sc, "guarded").TraceIDs
		if len(ids) == 0 {
			continue
		}
		if tr, ok := lookup(ctx, t, jc, ids[0], 15*time.Second); ok {
			twinTraces[sc] = tr
		}
	}

	t.Run("every leak guarded logged is in Jaeger with its line", func(t *testing.T) {
		leaks := loggedLeaks(t, filepath.Join(runLogs, "gateway-guarded.log"))
		if len(leaks) != requests {
			t.Errorf("guarded logged %d leaks, want %d (one per request of the leak scenario)", len(leaks), requests)
		}
		for _, l := range leaks {
			tr, ok := lookup(ctx, t, jc, l.traceID, 15*time.Second)
			if !ok {
				t.Errorf("leak logged with trace_id %s (span_id %s): trace not in Jaeger", l.traceID, l.spanID)
				continue
			}
			span, found := spanByID(tr, l.spanID)
			if !found {
				t.Errorf("trace %s: no span %s, the span_id of the leak's log line", l.traceID, l.spanID)
				continue
			}
			ev, ok := span.Event(vocab.EventBodyLeaked)
			if !ok {
				t.Errorf("trace %s: span %s (%s) has no %s event", l.traceID, l.spanID, span.OperationName, vocab.EventBodyLeaked)
				continue
			}
			file, _ := ev.Field("code.file.path")
			line, _ := ev.Field("code.line.number")
			if !strings.HasSuffix(file, leakFile) || line != strconv.Itoa(leakLineNo) {
				t.Errorf("trace %s: leak event names %s:%s, want …/%s:%d (the LEAK line)", l.traceID, file, line, leakFile, leakLineNo)
			}
			if kind, _ := span.Tag("span.kind"); kind != "client" {
				t.Errorf("trace %s: the leak's span %s is a %s span, want client", l.traceID, l.spanID, kind)
			}
			if status, _ := span.Tag("otel.status_code"); status != "ERROR" {
				t.Errorf("trace %s: leaked client span status = %q, want ERROR", l.traceID, status)
			}
		}
	})

	t.Run("every anomalous request of guarded is in Jaeger, the failed call under its server span", func(t *testing.T) {
		for _, tc := range []struct {
			scenario string
			want     []string
		}{
			{"leak", []string{vocab.ErrorBodyLeaked}},
			{"dead", []string{vocab.ErrorConnectionRefused}},
			{"5xx", []string{"503"}},
			// ads, a telltale service too, gives up at the deadline the
			// gateway propagated (Connect-Timeout-Ms), rounded down to the
			// millisecond: its 504 can reach the gateway just before the
			// gateway's own deadline does.
			{"blackhole", []string{vocab.ErrorDeadlineExceeded, vocab.ErrorTimeoutAwaitingHeaders, "504"}},
		} {
			ids := all.gateway(t, tc.scenario, "guarded").AnomalousTraceIDs
			if len(ids) != requests {
				t.Errorf("%s: %d anomalous guarded requests, want all %d", tc.scenario, len(ids), requests)
			}
			for _, id := range ids {
				tr, ok := lookup(ctx, t, jc, id, 15*time.Second)
				if !ok {
					t.Errorf("%s: anomalous request's trace %s not in Jaeger", tc.scenario, id)
					continue
				}
				if !failedUnderServer(tr, guardedService, tc.want) {
					b, _ := json.MarshalIndent(tr, "", " ")
					t.Errorf("%s: trace %s has no client span with error.type in %v under a server span of %s:\n%.4000s", tc.scenario, id, tc.want, guardedService, b)
				}
			}
		}
	})

	t.Run("the demo's own Jaeger check found every anomalous guarded request", func(t *testing.T) {
		for _, sc := range anomalousScenarios {
			g := all.gateway(t, sc, "guarded")
			if g.Jaeger == nil {
				t.Errorf("%s: the demo did not check Jaeger", sc)
			} else if g.Jaeger.AnomalousFound != g.Anomalous || g.Anomalous != requests {
				t.Errorf("%s: the demo found %d of %d anomalous guarded requests in Jaeger, want all %d", sc, g.Jaeger.AnomalousFound, g.Anomalous, requests)
			}
		}
	})

	t.Run("the naive gateways' anomalous requests are mostly not in Jaeger", func(t *testing.T) {
		// By now guarded's traces are stored: what is missing here was
		// never exported. A naive request's trace may hold the spans its
		// upstream, a telltale service, exported of its own anomaly (ads
		// slow or black-holed): only the gateway's own spans count.
		total, found := 0, 0
		for _, sc := range []string{"leak", "dead", "blackhole"} {
			for _, gw := range []string{"naive", "first-fix"} {
				g := all.gateway(t, sc, gw)
				for _, id := range g.AnomalousTraceIDs {
					total++
					if tr, ok := lookup(ctx, t, jc, id, 0); ok && holds(tr, g.Service) {
						found++
					}
				}
			}
		}
		// At 1%, 150 anomalous requests give 1.5 sampled traces on
		// average; more than 8 happens about once in 30 000 runs.
		if total == 0 || found > 8 {
			t.Errorf("%d of the naive gateways' %d anomalous requests are in Jaeger, want at most 8 (head sampling at %s)", found, total, sample)
		}
		t.Logf("%d of the naive gateways' %d anomalous requests are in Jaeger (head sampling at %s)", found, total, sample)
	})

	t.Run("guarded black hole: answered in time, partially", func(t *testing.T) {
		g := all.gateway(t, "blackhole", "guarded")
		if limit := gateway.GuardedDeadline + 500*time.Millisecond; g.Summary.Max > limit {
			t.Errorf("guarded answered in %s at worst, want within %s", g.Summary.Max, limit)
		}
		if g.Partial == 0 {
			t.Errorf("guarded gave no partial answer while ads was black-holed")
		}
	})

	t.Run("black hole: naive waits out the outage, first-fix gives up at 2s", func(t *testing.T) {
		n := all.gateway(t, "blackhole", "naive")
		s := n.Summary
		// The first request waits for the whole outage, less the moment
		// between the fault and that request.
		if n.Outage <= 0 || s.Max < n.Outage-time.Second || s.Max > n.Outage+time.Second {
			t.Errorf("naive: slowest answer after %s, want about the outage (%s)", s.Max, n.Outage)
		}
		if s.OK != s.Requests || s.InFlightPeak != s.Requests {
			t.Errorf("naive: %d/%d ok, %d in flight at the peak: want every request answered once ads came back, all of them piled up", s.OK, s.Requests, s.InFlightPeak)
		}
		f := all.gateway(t, "blackhole", "first-fix").Summary
		if f.Errors != f.Requests || f.Max > gateway.FirstFixTimeout+500*time.Millisecond {
			t.Errorf("first-fix: %d/%d errors, slowest after %s: want every request failed after its %s timeout", f.Errors, f.Requests, f.Max, gateway.FirstFixTimeout)
		}
	})

	t.Run("naive leak: the sampled ones have no client span", func(t *testing.T) {
		for _, id := range all.gateway(t, "leak", "naive").AnomalousTraceIDs {
			tr, ok := lookup(ctx, t, jc, id, 0)
			if !ok {
				continue // not sampled
			}
			for _, s := range tr.Spans {
				if kind, _ := s.Tag("span.kind"); kind == "client" {
					t.Errorf("trace %s of the naive leak holds a client span %q: plain otelhttp should never end it", id, s.OperationName)
				}
			}
		}
	})

	t.Run("replays of huge and dead are whole and read as their sampled twins", func(t *testing.T) {
		for _, sc := range []string{"dead", "huge"} {
			tr, ok := twinTraces[sc]
			if !ok {
				t.Fatalf("%s: no sampled twin in Jaeger", sc)
			}
			if replayed(tr) {
				t.Errorf("%s: the twin %s at -sample 1 was replayed, want it sampled", sc, tr.TraceID)
			}
			twin := shape(tr, guardedService)
			replays := 0
			var problems problemSet
			for _, tr := range guarded[sc] {
				if !replayed(tr) {
					continue // sampled at the head: 1% of them
				}
				replays++
				for _, p := range wholeLocalTree(tr, guardedService) {
					problems.add(p, tr.TraceID)
				}
				if d := diffLines(shape(tr, guardedService), twin); len(d) > 0 {
					problems.add("does not read as its sampled twin (ids, times and "+vocab.AttrReplayed+" aside):\n    "+strings.Join(d, "\n    "), tr.TraceID)
				}
			}
			problems.report(t, sc+": replayed traces")
			if replays == 0 {
				t.Errorf("%s: no replayed trace among %d", sc, len(guarded[sc]))
			}
			t.Logf("%s: %d replayed traces checked against their sampled twin", sc, replays)
		}
	})

	t.Run("client spans name their upstream", func(t *testing.T) {
		n := 0
		for sc, trs := range guarded {
			for _, tr := range trs {
				for _, s := range tr.Spans {
					if kind, _ := s.Tag("span.kind"); kind != "client" || tr.Service(s) != guardedService {
						continue
					}
					n++
					peer, _ := s.Tag(vocab.AttrPeerService)
					if !slices.Contains(gateway.UpstreamNames, peer) || s.OperationName != "GET "+peer {
						t.Errorf("%s: trace %s: client span %q with peer.service %q, want GET articles, users or ads", sc, tr.TraceID, s.OperationName, peer)
					}
				}
			}
		}
		t.Logf("%d client spans checked", n)
	})

	t.Run("black-hole calls are slow at start plus the threshold, waiting for the headers", func(t *testing.T) {
		n := 0
		for _, tr := range guarded["blackhole"] {
			ads, ok := spanNamed(tr, guardedService, "GET ads")
			if !ok {
				t.Errorf("trace %s: no GET ads span", tr.TraceID)
				continue
			}
			ttfb := false
			for _, l := range ads.Logs {
				if ev, _ := l.Field("event"); ev != vocab.EventUpstreamSlow {
					continue
				}
				n++
				kind, _ := l.Field(vocab.AttrSlowKind)
				waiting, _ := l.Field(vocab.AttrSlowWaitingFor)
				threshold, _ := l.Field(vocab.AttrSlowThreshold)
				ms, _ := strconv.Atoi(threshold)
				at := time.Duration(l.Timestamp-ads.StartTime) * time.Microsecond
				if d := at - time.Duration(ms)*time.Millisecond; d < -20*time.Millisecond || d > 20*time.Millisecond {
					t.Errorf("trace %s: %s (%s) stamped %s after the call started, want its threshold %sms ±20ms", tr.TraceID, vocab.EventUpstreamSlow, kind, at, threshold)
				}
				if kind == vocab.SlowTTFB {
					ttfb = true
					if waiting != vocab.WaitingForHeaders || ms != int(gateway.SlowTTFB/time.Millisecond) {
						t.Errorf("trace %s: ttfb slow event waiting for %q past %sms, want %s past %s", tr.TraceID, waiting, threshold, vocab.WaitingForHeaders, gateway.SlowTTFB)
					}
				}
			}
			if !ttfb {
				t.Errorf("trace %s: GET ads has no %s event of kind %s", tr.TraceID, vocab.EventUpstreamSlow, vocab.SlowTTFB)
			}
		}
		if len(guarded["blackhole"]) != requests {
			t.Errorf("%d black-hole traces in Jaeger, want %d", len(guarded["blackhole"]), requests)
		}
		t.Logf("%d slow events checked on %d black-hole calls", n, len(guarded["blackhole"]))
	})

	t.Run("a stack once per trace at most", func(t *testing.T) {
		for sc, trs := range guarded {
			for _, tr := range trs {
				if n := stacks(tr); n > 1 {
					t.Errorf("%s: trace %s holds %d code.stacktrace, want one at most", sc, tr.TraceID, n)
				}
			}
		}
	})

	t.Run("no overrun on a 504 whose handler returned in time", func(t *testing.T) {
		checked := 0
		for sc, trs := range guarded {
			for _, tr := range trs {
				for _, s := range tr.Spans {
					kind, _ := s.Tag("span.kind")
					status, _ := s.Tag("http.response.status_code")
					if kind != "server" || status != "504" {
						continue
					}
					timeout, _ := s.Tag(vocab.AttrDeadlineTimeout)
					ms, err := strconv.Atoi(timeout)
					if err != nil {
						t.Errorf("%s: trace %s: 504 span %s (%s) without %s", sc, tr.TraceID, s.OperationName, tr.Service(s), vocab.AttrDeadlineTimeout)
						continue
					}
					took := time.Duration(s.Duration) * time.Microsecond
					if took > time.Duration(ms)*time.Millisecond+100*time.Millisecond {
						continue // its handler did overrun: the attribute may be there
					}
					checked++
					if v, ok := s.Tag(vocab.AttrDeadlineOverrun); ok {
						t.Errorf("%s: trace %s: 504 span %s of %s took %s for a %dms deadline and says %s=%s", sc, tr.TraceID, s.OperationName, tr.Service(s), took, ms, vocab.AttrDeadlineOverrun, v)
					}
				}
			}
		}
		if checked == 0 {
			t.Error("no 504 answered in time to check: ads, black-holed, should answer some at the deadline the gateway propagated")
		}
		t.Logf("%d 504 server spans answered in time checked", checked)
	})

	t.Run("slow and 5xx: the upstream's span is the child of the gateway's call", func(t *testing.T) {
		for _, sc := range []string{"slow", "5xx"} {
			if len(guarded[sc]) != requests {
				t.Errorf("%s: %d guarded traces in Jaeger, want %d", sc, len(guarded[sc]), requests)
			}
			joined := 0
			for _, tr := range guarded[sc] {
				call, ok := spanNamed(tr, guardedService, "GET ads")
				if !ok {
					t.Errorf("%s: trace %s: no GET ads span of %s", sc, tr.TraceID, guardedService)
					continue
				}
				served, ok := spanNamed(tr, "ads", "GET "+upstream.ItemsPath)
				if !ok {
					t.Errorf("%s: trace %s holds no span of the ads service: %s", sc, tr.TraceID, strings.TrimSpace(tr.Tree()))
					continue
				}
				if served.Parent() != call.SpanID || served.TraceID != call.TraceID || served.TraceID != tr.TraceID {
					t.Errorf("%s: trace %s: ads's span %s is in trace %s under %s, want under GET ads %s of trace %s", sc, tr.TraceID, served.SpanID, served.TraceID, served.Parent(), call.SpanID, call.TraceID)
					continue
				}
				joined++
			}
			t.Logf("%s: %d traces hold both services' spans, ads's under the gateway's GET ads", sc, joined)
		}
	})

	t.Run("a replayed trace, as text and in the Jaeger UI", func(t *testing.T) {
		tr, ok := pickReplayed(guarded["blackhole"])
		if !ok {
			t.Fatal("no replayed black-hole trace of the guarded gateway")
		}
		tree := tr.Tree()
		txt := filepath.Join("..", "testdata", "replayed-trace.txt")
		if err := os.MkdirAll(filepath.Dir(txt), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(txt, []byte(tree), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s:\n%s", txt, tree)
		if _, err := os.Stat(chromium); err != nil {
			t.Skipf("%s not found (scripts/test-deps.sh installs it): no screenshot", chromium)
		}
		if ui == "" || aio == nil {
			t.Skip("the Jaeger of this test serves no UI (../shared/jaeger-ui is not there, or the Jaeger was not started here): no screenshot")
		}
		missing := screenshot(ctx, t, tr, "replayed-trace.png")
		twinPNG := filepath.Join("..", "testdata", "sampled-twin.png")
		if len(missing) == 0 {
			_ = os.Remove(twinPNG)
			return
		}
		t.Errorf("the Jaeger UI's page of the replayed trace %s does not show its spans %v, so no screenshot (a span whose parent is missing or itself leaves the UI without a root; the sampled twin is screenshot instead, for comparison)", tr.TraceID, missing)
		// For comparison, the sampled twin of a replay, which the UI shows.
		if twin, ok := twinTraces["dead"]; ok {
			if m := screenshot(ctx, t, twin, "sampled-twin.png"); len(m) > 0 {
				t.Errorf("the Jaeger UI's page of the sampled twin %s does not show its spans %v either", twin.TraceID, m)
			}
		}
	})

	t.Run("fleet: anomalous traces of both services kept whole, healthy ones thinned", func(t *testing.T) {
		if aio == nil {
			t.Skip("the all-in-one Jaeger on the demo's ports is not this test's: the fleet cannot take them")
		}
		_ = aio.Stop()
		// Started here, so that it outlives the demo's run, which finds it
		// healthy and sends its traces there.
		logs := filepath.Join(tmp, "fleet")
		if err := os.MkdirAll(logs, 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := jaeger.StartFleet(ctx, dir, logs)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.Stop() })
		fleet := runDemo(ctx, t, demo, logs, "-fleet",
			"-scenario", "healthy,slow,5xx", "-requests", strconv.Itoa(fleetRequests), "-rps", "30", "-settle", "2s")
		checkFleet(ctx, t, jc, fleet)
	})
	t.Logf("e2e took %s", time.Since(began).Round(time.Second))
}

// runDemo runs the demo binary with -exit, -json and -logs logs, and
// returns its results.
func runDemo(ctx context.Context, t *testing.T, demo, logs string, args ...string) results {
	t.Helper()
	out := filepath.Join(logs, "results.json")
	args = append([]string{"-exit", "-json", out, "-logs", logs}, args...)
	run := exec.CommandContext(ctx, demo, args...)
	run.Env = append(os.Environ(), "OTEL_EXPORTER_OTLP_ENDPOINT=", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=")
	start := time.Now()
	report, err := run.CombinedOutput()
	t.Logf("demo %s (%s):\n%s", strings.Join(args, " "), time.Since(start).Round(100*time.Millisecond), report)
	if err != nil {
		t.Fatalf("demo: %v", err)
	}
	var rs results
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rs); err != nil {
		t.Fatal(err)
	}
	return rs
}

// checkFleet checks what the fleet kept: the demo's own accounting, by
// service, and the guarded gateway's traces looked up here.
func checkFleet(ctx context.Context, t *testing.T, jc *jaeger.Client, rs results) {
	t.Helper()
	services := []string{"gateway-naive", "gateway-first-fix", guardedService, "articles", "users", "ads"}
	for _, r := range rs {
		got := map[string]bool{}
		for _, c := range r.Fleet {
			got[c.Service] = true
			t.Logf("%s %s: anomalous %d sent, %d kept whole; healthy %d sent, %d kept, %d whole", r.Name, c.Service, c.AnomalousSent, c.AnomalousWhole, c.HealthySent, c.HealthyKept, c.HealthyWhole)
			switch r.Name {
			case "slow", "5xx":
				// ads flags its own span, so every request's trace is
				// anomalous, for every service in it: each gateway's
				// requests, and the upstreams' of the three gateways.
				want := fleetRequests
				if !strings.HasPrefix(c.Service, "gateway-") {
					want = 3 * fleetRequests
				}
				if c.AnomalousSent != want {
					t.Errorf("%s: %s sent %d anomalous traces, want %d", r.Name, c.Service, c.AnomalousSent, want)
				}
				if c.AnomalousWhole != c.AnomalousSent || c.HealthySent != 0 {
					t.Errorf("%s: %s: %d of %d anomalous traces kept whole, %d healthy: want every one, whole, and none healthy", r.Name, c.Service, c.AnomalousWhole, c.AnomalousSent, c.HealthySent)
				}
			case "healthy":
				if c.AnomalousSent != 0 || c.HealthyWhole != c.HealthyKept {
					t.Errorf("healthy: %s: %d anomalous traces, %d of %d kept healthy ones whole: want none anomalous, the kept ones whole", c.Service, c.AnomalousSent, c.HealthyWhole, c.HealthyKept)
				}
			}
		}
		for _, s := range services {
			if !got[s] {
				t.Errorf("%s: the fleet's accounting has no %s", r.Name, s)
			}
		}
	}

	// Looked up here: every guarded request of slow and 5xx is stored
	// whole, the gateway's four spans and the upstreams' three; of the
	// healthy requests of the three gateways, about a tenth.
	for _, sc := range []string{"slow", "5xx"} {
		for _, id := range rs.gateway(t, sc, "guarded").TraceIDs {
			tr, ok := lookup(ctx, t, jc, id, 10*time.Second)
			if !ok {
				t.Errorf("%s: anomalous trace %s not kept", sc, id)
				continue
			}
			count := map[string]int{}
			for _, s := range tr.Spans {
				count[tr.Service(s)]++
			}
			want := map[string]int{guardedService: 4, "articles": 1, "users": 1, "ads": 1}
			if !maps.Equal(count, want) {
				t.Errorf("%s: trace %s holds %v, want %v:\n%s", sc, id, count, want, tr.Tree())
			}
		}
	}
	healthy, kept := 0, 0
	for _, gw := range []string{"naive", "first-fix", "guarded"} {
		g := rs.gateway(t, "healthy", gw)
		for _, id := range g.TraceIDs {
			healthy++
			if tr, ok := lookup(ctx, t, jc, id, 0); ok && holds(tr, g.Service) {
				kept++
			}
		}
	}
	// Binomial(180, 10 %): mean 18, standard deviation 4. Outside [3, 45]
	// (probabilities below 1e-5 each) the probabilistic policy is not
	// thinning at 10 %, or something else keeps healthy traces.
	if healthy != 3*fleetRequests || kept < 3 || kept > 45 {
		t.Errorf("%d of %d healthy traces kept, want a tenth of %d (3 to 45)", kept, healthy, 3*fleetRequests)
	}
	t.Logf("healthy traces kept by the fleet: %d of %d", kept, healthy)
}

// leakLine finds the line marked "// LEAK:" in file, the line the leak
// event must name.
func leakLine(t *testing.T, file string) (string, int) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if strings.Contains(sc.Text(), "// LEAK:") {
			return strings.TrimPrefix(file, "../"), n
		}
	}
	t.Fatalf("no // LEAK: line in %s", file)
	return "", 0
}

// loggedLeak is one leak warning of the transport's log.
type loggedLeak struct{ traceID, spanID string }

// loggedLeaks reads the leak warnings of a gateway's log (slog's text
// format, one record a line).
func loggedLeaks(t *testing.T, path string) []loggedLeak {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var leaks []loggedLeak
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		rec := logfmt(sc.Text())
		if rec["msg"] != "telltale: response body leaked" {
			continue
		}
		if rec["trace_id"] == "" || rec["span_id"] == "" {
			t.Errorf("leak warning without trace_id or span_id: %s", sc.Text())
			continue
		}
		leaks = append(leaks, loggedLeak{rec["trace_id"], rec["span_id"]})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return leaks
}

// logfmt parses one line of slog's text format: key=value pairs, values
// quoted with Go syntax when they need it.
func logfmt(line string) map[string]string {
	rec := map[string]string{}
	for line != "" {
		line = strings.TrimLeft(line, " ")
		key, rest, ok := strings.Cut(line, "=")
		if !ok {
			break
		}
		var val string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				break
			}
			val, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else {
			val, rest, _ = strings.Cut(rest, " ")
		}
		rec[key] = val
		line = rest
	}
	return rec
}

// spanByID returns the span of tr with id.
func spanByID(tr jaeger.Trace, id string) (jaeger.Span, bool) {
	for _, s := range tr.Spans {
		if s.SpanID == id {
			return s, true
		}
	}
	return jaeger.Span{}, false
}

// failedUnderServer reports whether tr holds a client span with one of the
// error types want, child of a server span of service.
func failedUnderServer(tr jaeger.Trace, service string, want []string) bool {
	servers := map[string]bool{}
	for _, s := range tr.Spans {
		if kind, _ := s.Tag("span.kind"); kind == "server" && tr.Service(s) == service {
			servers[s.SpanID] = true
		}
	}
	for _, s := range tr.Spans {
		kind, _ := s.Tag("span.kind")
		et, _ := s.Tag("error.type")
		if kind == "client" && slices.Contains(want, et) && servers[s.Parent()] {
			return true
		}
	}
	return false
}

// lookup fetches trace id, polling up to wait for it to be stored
// (exporters flush in batches, Jaeger stores ~0.2s later); it reports
// whether Jaeger holds it.
func lookup(ctx context.Context, t *testing.T, jc *jaeger.Client, id string, wait time.Duration) (jaeger.Trace, bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		tr, err := jc.Trace(ctx, id)
		if err == nil {
			return tr, true
		}
		if !errors.Is(err, jaeger.ErrNotFound) {
			t.Fatalf("trace %s: %v", id, err)
		}
		if time.Now().After(deadline) {
			return jaeger.Trace{}, false
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// holds reports whether tr has a span of service.
func holds(tr jaeger.Trace, service string) bool {
	for _, s := range tr.Spans {
		if tr.Service(s) == service {
			return true
		}
	}
	return false
}

// replayed reports whether tr's guarded server span was replayed: the head
// sampler had dropped it.
func replayed(tr jaeger.Trace) bool {
	s, ok := spanNamed(tr, guardedService, "GET "+gateway.FeedPath)
	v, _ := s.Tag(vocab.AttrReplayed)
	return ok && v == "true"
}

// spanNamed returns the first span of service named name.
func spanNamed(tr jaeger.Trace, service, name string) (jaeger.Span, bool) {
	for _, s := range tr.Spans {
		if tr.Service(s) == service && s.OperationName == name {
			return s, true
		}
	}
	return jaeger.Span{}, false
}

// wholeLocalTree says what tr lacks to hold service's whole local tree of
// a feed request: its server span, a root, and one client span per
// upstream under it, named after the upstream.
func wholeLocalTree(tr jaeger.Trace, service string) []string {
	var problems []string
	server, ok := spanNamed(tr, service, "GET "+gateway.FeedPath)
	if !ok {
		return []string{"no server span GET " + gateway.FeedPath}
	}
	switch p := server.Parent(); {
	case p == server.SpanID:
		problems = append(problems, "the server span names itself as its parent (CHILD_OF its own span id): the Jaeger UI finds no root span and cannot show the trace")
	case p != "":
		problems = append(problems, "the server span has a parent, "+p)
	}
	calls := map[string]int{}
	for _, s := range tr.Spans {
		if kind, _ := s.Tag("span.kind"); kind == "client" && tr.Service(s) == service {
			calls[s.OperationName]++
			if s.Parent() != server.SpanID {
				problems = append(problems, s.OperationName+" is not under the server span")
			}
		}
	}
	for _, up := range gateway.UpstreamNames {
		if n := calls["GET "+up]; n != 1 {
			problems = append(problems, fmt.Sprintf("%d client spans GET %s, want 1", n, up))
		}
	}
	if len(calls) != len(gateway.UpstreamNames) {
		problems = append(problems, fmt.Sprintf("client spans %v, want one per upstream", calls))
	}
	return problems
}

// ignoredKeys are the tags a replayed span and its sampled twin may differ
// by: the marks of the replay, and the caller's ephemeral port.
func ignoredKey(k string) bool {
	return strings.HasPrefix(k, "telltale.replay") || k == "network.peer.port"
}

// shape writes service's spans of tr as sorted lines, ids, times and
// values aside: kind, name, parent's name, status, tag keys, events with
// their field keys.
func shape(tr jaeger.Trace, service string) []string {
	byID := map[string]jaeger.Span{}
	for _, s := range tr.Spans {
		byID[s.SpanID] = s
	}
	var lines []string
	for _, s := range tr.Spans {
		if tr.Service(s) != service {
			continue
		}
		parent := "(root)"
		switch p := s.Parent(); {
		case p == s.SpanID:
			parent = "(itself)"
		case p != "":
			if ps, ok := byID[p]; ok {
				parent = ps.OperationName
			} else {
				parent = "(not in the trace)"
			}
		}
		kind, _ := s.Tag("span.kind")
		status, _ := s.Tag("otel.status_code")
		var keys []string
		for _, kv := range s.Tags {
			if !ignoredKey(kv.Key) {
				keys = append(keys, kv.Key)
			}
		}
		slices.Sort(keys)
		var events []string
		for _, l := range s.Logs {
			name, _ := l.Field("event")
			var fields []string
			for _, f := range l.Fields {
				if f.Key != "event" {
					fields = append(fields, f.Key)
				}
			}
			slices.Sort(fields)
			events = append(events, name+"{"+strings.Join(fields, ",")+"}")
		}
		slices.Sort(events)
		lines = append(lines, fmt.Sprintf("%s %q under %q, status %q, tags %v, events %v", kind, s.OperationName, parent, status, keys, events))
	}
	slices.Sort(lines)
	return lines
}

// diffLines returns the lines only one of a (the replay) and b (the twin)
// has.
func diffLines(a, b []string) []string {
	var d []string
	for _, l := range a {
		if !slices.Contains(b, l) {
			d = append(d, "replay only: "+l)
		}
	}
	for _, l := range b {
		if !slices.Contains(a, l) {
			d = append(d, "twin only:   "+l)
		}
	}
	return d
}

// stacks counts the code.stacktrace values of tr, on spans and events.
func stacks(tr jaeger.Trace) int {
	n := 0
	for _, s := range tr.Spans {
		if _, ok := s.Tag("code.stacktrace"); ok {
			n++
		}
		for _, l := range s.Logs {
			if _, ok := l.Field("code.stacktrace"); ok {
				n++
			}
		}
	}
	return n
}

// pickReplayed returns a replayed trace among trs: preferably one in which
// the upstream answered too, with a 504 at the deadline the gateway gave
// it, the richest picture of the two services.
func pickReplayed(trs []jaeger.Trace) (jaeger.Trace, bool) {
	best, score := jaeger.Trace{}, 0
	for _, tr := range trs {
		if !replayed(tr) {
			continue
		}
		n := 1
		if ads, ok := spanNamed(tr, "ads", "GET "+upstream.ItemsPath); ok {
			n = 2
			if status, _ := ads.Tag("http.response.status_code"); status == "504" {
				n = 3
			}
		}
		if n > score {
			best, score = tr, n
		}
	}
	return best, score > 0
}

// uiDir returns the official Jaeger UI build beside the repository
// (shared/jaeger-ui, see its README.txt), or "" when it is not there.
// TELLTALE_JAEGER_UI names another.
func uiDir(jaegerDir string) string {
	dir := os.Getenv("TELLTALE_JAEGER_UI")
	if dir == "" {
		// jaegerDir is <repo>/demo/jaeger; the build is <repo>/../shared/jaeger-ui.
		dir = filepath.Join(filepath.Dir(jaegerDir), "..", "..", "shared", "jaeger-ui")
	}
	if _, err := os.Stat(filepath.Join(dir, "index.html")); err != nil {
		return ""
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return ""
	}
	return abs
}

// chromium is the browser of Debian's chromium package (scripts/test-deps.sh).
const chromium = "/usr/bin/chromium"

// screenshot renders tr's page of the Jaeger UI in headless Chromium into
// testdata/name, after checking that the page shows every span; it
// returns the spans the page does not show (and then writes no picture,
// and removes an older one, which would show what this run did not).
func screenshot(ctx context.Context, t *testing.T, tr jaeger.Trace, name string) (missing []string) {
	t.Helper()
	url := jaeger.TraceURL(jaeger.QueryURL, tr.TraceID)
	dom := runChromium(ctx, t, "--dump-dom", url)
	for _, s := range tr.Spans {
		if !strings.Contains(dom, s.OperationName) && !slices.Contains(missing, s.OperationName) {
			missing = append(missing, s.OperationName)
		}
	}
	png, err := filepath.Abs(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		_ = os.Remove(png)
		return missing
	}
	runChromium(ctx, t, "--screenshot="+png, url)
	if st, err := os.Stat(png); err != nil || st.Size() == 0 {
		t.Fatalf("no screenshot: %v", err)
	}
	t.Logf("wrote %s (%s)", png, url)
	return nil
}

// runChromium runs headless Chromium with args, as JAEGER.md says: a
// virtual-time budget, so that the page is caught loaded.
func runChromium(ctx context.Context, t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	base := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--virtual-time-budget=5000", "--window-size=1400,900",
		"--user-data-dir=" + t.TempDir(),
	}
	cmd := exec.CommandContext(ctx, chromium, append(base, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

// problemSet gathers the problems of many traces, to report each once with
// how many traces have it.
type problemSet struct {
	order []string
	ids   map[string][]string
}

func (p *problemSet) add(problem, traceID string) {
	if p.ids == nil {
		p.ids = map[string][]string{}
	}
	if _, ok := p.ids[problem]; !ok {
		p.order = append(p.order, problem)
	}
	p.ids[problem] = append(p.ids[problem], traceID)
}

// report fails t once per problem, naming up to three traces.
func (p *problemSet) report(t *testing.T, what string) {
	t.Helper()
	for _, problem := range p.order {
		ids := p.ids[problem]
		t.Errorf("%s: %d of them (e.g. %s): %s", what, len(ids), strings.Join(ids[:min(3, len(ids))], ", "), problem)
	}
}
