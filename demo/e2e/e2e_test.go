package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
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
	"github.com/telltale-go/telltale/vocab"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// result mirrors the fields of the demo's -json output the test reads.
type result struct {
	Name     string `json:"name"`
	Gateways []struct {
		Gateway string `json:"gateway"`
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
	} `json:"gateways"`
}

// sample is the head-sampling ratio the demo runs with here: production's.
const sample = "0.01"

// requests is the load of each gateway in each scenario.
const requests = 30

func TestE2E(t *testing.T) {
	dir, err := jaeger.Dir()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(jaeger.Binary(dir)); err != nil {
		msg := "e2e: the Jaeger binary is not built (" + jaeger.Binary(dir) + "); run `make -C demo e2e`, which builds it (about 4 minutes the first time)"
		if os.Getenv("TELLTALE_E2E") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tmp := t.TempDir()

	if jaeger.Healthy(ctx) {
		t.Log("a Jaeger already runs on the demo's ports: using it (traces are looked up by id)")
	} else {
		p, err := jaeger.Start(ctx, dir, filepath.Join(tmp, "jaeger.log"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Stop() })
	}

	// The demo binary, run as users run it: it finds the Jaeger above
	// healthy, sends its traces there and checks them itself too.
	demo := filepath.Join(tmp, "demo")
	build := exec.CommandContext(ctx, "go", "build", "-o", demo, "../cmd/demo")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/demo: %v\n%s", err, out)
	}
	out := filepath.Join(tmp, "results.json")
	run := exec.CommandContext(ctx, demo, "-exit", "-sample", sample,
		"-scenario", "leak,dead,blackhole", "-requests", strconv.Itoa(requests), "-rps", "30", "-settle", "2s",
		"-json", out, "-logs", tmp)
	run.Env = append(os.Environ(), "OTEL_EXPORTER_OTLP_ENDPOINT=", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=")
	report, err := run.CombinedOutput()
	t.Logf("demo output:\n%s", report)
	if err != nil {
		t.Fatalf("demo: %v", err)
	}
	var results []result
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &results); err != nil {
		t.Fatal(err)
	}
	type gatewayResult = struct {
		scenario, gateway string
		anomalous         []string
	}
	var all []gatewayResult
	for _, r := range results {
		for _, g := range r.Gateways {
			all = append(all, gatewayResult{r.Name, g.Gateway, g.AnomalousTraceIDs})
		}
	}
	anomalous := func(scenario, gw string) []string {
		for _, g := range all {
			if g.scenario == scenario && g.gateway == gw {
				return g.anomalous
			}
		}
		t.Fatalf("%s/%s: not in the results", scenario, gw)
		return nil
	}

	jc := &jaeger.Client{HTTP: &http.Client{Timeout: 10 * time.Second}}
	t.Cleanup(jc.HTTP.CloseIdleConnections)
	leakFile, leakLineNo := leakLine(t, "../internal/gateway/guarded.go")

	t.Run("every leak guarded logged is in Jaeger with its line", func(t *testing.T) {
		leaks := loggedLeaks(t, filepath.Join(tmp, "gateway-guarded.log"))
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
			{"blackhole", []string{vocab.ErrorDeadlineExceeded, vocab.ErrorTimeoutAwaitingHeaders}},
		} {
			ids := anomalous(tc.scenario, "guarded")
			if len(ids) != requests {
				t.Errorf("%s: %d anomalous guarded requests, want all %d", tc.scenario, len(ids), requests)
			}
			for _, id := range ids {
				tr, ok := lookup(ctx, t, jc, id, 15*time.Second)
				if !ok {
					t.Errorf("%s: anomalous request's trace %s not in Jaeger", tc.scenario, id)
					continue
				}
				if !failedUnderServer(tr, "gateway-guarded", tc.want) {
					b, _ := json.MarshalIndent(tr, "", " ")
					t.Errorf("%s: trace %s has no client span with error.type in %v under a server span of gateway-guarded:\n%.4000s", tc.scenario, id, tc.want, b)
				}
			}
		}
	})

	t.Run("the demo's own Jaeger check found every anomalous guarded request", func(t *testing.T) {
		for _, r := range results {
			for _, g := range r.Gateways {
				if g.Gateway != "guarded" {
					continue
				}
				if g.Jaeger == nil {
					t.Errorf("%s: the demo did not check Jaeger", r.Name)
				} else if g.Jaeger.AnomalousFound != g.Anomalous || g.Anomalous != requests {
					t.Errorf("%s: the demo found %d of %d anomalous guarded requests in Jaeger, want all %d", r.Name, g.Jaeger.AnomalousFound, g.Anomalous, requests)
				}
			}
		}
	})

	t.Run("the naive gateways' anomalous requests are mostly not in Jaeger", func(t *testing.T) {
		// By now guarded's traces are stored: what is missing here was
		// never exported.
		total, found := 0, 0
		for _, g := range all {
			if g.gateway == "guarded" {
				continue
			}
			for _, id := range g.anomalous {
				total++
				if _, ok := lookup(ctx, t, jc, id, 0); ok {
					found++
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
		for _, r := range results {
			for _, g := range r.Gateways {
				if r.Name == "blackhole" && g.Gateway == "guarded" {
					if limit := gateway.GuardedDeadline + 500*time.Millisecond; g.Summary.Max > limit {
						t.Errorf("guarded answered in %s at worst, want within %s", g.Summary.Max, limit)
					}
					if g.Partial == 0 {
						t.Errorf("guarded gave no partial answer while ads was black-holed")
					}
				}
			}
		}
	})

	t.Run("black hole: naive waits out the outage, first-fix gives up at 2s", func(t *testing.T) {
		found := 0
		for _, r := range results {
			for _, g := range r.Gateways {
				if r.Name != "blackhole" {
					continue
				}
				s := g.Summary
				switch g.Gateway {
				case "naive":
					found++
					// The first request waits for the whole outage, less
					// the moment between the fault and that request.
					if g.Outage <= 0 || s.Max < g.Outage-time.Second || s.Max > g.Outage+time.Second {
						t.Errorf("naive: slowest answer after %s, want about the outage (%s)", s.Max, g.Outage)
					}
					if s.OK != s.Requests || s.InFlightPeak != s.Requests {
						t.Errorf("naive: %d/%d ok, %d in flight at the peak: want every request answered once ads came back, all of them piled up", s.OK, s.Requests, s.InFlightPeak)
					}
				case "first-fix":
					found++
					if s.Errors != s.Requests || s.Max > gateway.FirstFixTimeout+500*time.Millisecond {
						t.Errorf("first-fix: %d/%d errors, slowest after %s: want every request failed after its %s timeout", s.Errors, s.Requests, s.Max, gateway.FirstFixTimeout)
					}
				}
			}
		}
		if found != 2 {
			t.Errorf("found %d of the naive and first-fix blackhole results, want 2", found)
		}
	})

	t.Run("naive leak: the sampled ones have no client span", func(t *testing.T) {
		for _, id := range anomalous("leak", "naive") {
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
