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
		Partial  int           `json:"partial"`
		TraceIDs []string      `json:"trace_ids"`
		Outage   time.Duration `json:"outage_ns"`
	} `json:"gateways"`
}

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

	// The demo binary, run as users run it.
	demo := filepath.Join(tmp, "demo")
	build := exec.CommandContext(ctx, "go", "build", "-o", demo, "../cmd/demo")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/demo: %v\n%s", err, out)
	}
	out := filepath.Join(tmp, "results.json")
	run := exec.CommandContext(ctx, demo, "-exit", "-otlp", jaeger.OTLPHTTP,
		"-scenario", "leak,dead,blackhole", "-requests", "20", "-rps", "20", "-settle", "2s", "-sample", "1",
		"-json", out, "-logs", tmp)
	run.Env = append(os.Environ(), "OTEL_EXPORTER_OTLP_ENDPOINT=")
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
	ids := func(scenario, gw string) []string {
		for _, r := range results {
			for _, g := range r.Gateways {
				if r.Name == scenario && g.Gateway == gw {
					if len(g.TraceIDs) == 0 {
						t.Fatalf("%s/%s: no trace ids in the results", scenario, gw)
					}
					return g.TraceIDs
				}
			}
		}
		t.Fatalf("%s/%s: not in the results", scenario, gw)
		return nil
	}

	jc := &jaeger.Client{HTTP: &http.Client{Timeout: 10 * time.Second}}
	t.Cleanup(jc.HTTP.CloseIdleConnections)

	t.Run("guarded leak names the handler's line", func(t *testing.T) {
		wantFile, wantLine := leakLine(t, "../internal/gateway/guarded.go")
		id := ids("leak", "guarded")[0]
		span, ev := waitFor(ctx, t, jc, id, func(tr jaeger.Trace, s jaeger.Span) (jaeger.Log, bool) {
			// The middleware repeats the event on the server span, whose
			// status is not the client span's: look at the client span.
			if kind, _ := s.Tag("span.kind"); kind != "client" {
				return jaeger.Log{}, false
			}
			return s.Event(vocab.EventBodyLeaked)
		})
		file, _ := ev.Field("code.file.path")
		line, _ := ev.Field("code.line.number")
		if !strings.HasSuffix(file, wantFile) || line != strconv.Itoa(wantLine) {
			t.Errorf("leak event names %s:%s, want …/%s:%d (the LEAK line)", file, line, wantFile, wantLine)
		}
		if status, _ := span.Tag("otel.status_code"); status != "ERROR" {
			t.Errorf("leaked client span status = %q, want ERROR", status)
		}
		if reason, _ := ev.Field(vocab.AttrLeakReason); reason == "" {
			t.Errorf("leak event has no %s", vocab.AttrLeakReason)
		}
	})

	t.Run("guarded dead upstream: connection_refused", func(t *testing.T) {
		id := ids("dead", "guarded")[0]
		waitFor(ctx, t, jc, id, errorType(vocab.ErrorConnectionRefused))
	})

	t.Run("guarded black hole: deadline error, answered in time", func(t *testing.T) {
		id := ids("blackhole", "guarded")[0]
		waitFor(ctx, t, jc, id, errorType(vocab.ErrorDeadlineExceeded, vocab.ErrorTimeoutAwaitingHeaders))
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

	t.Run("naive leak: no client span at all", func(t *testing.T) {
		for _, id := range ids("leak", "naive")[:5] {
			tr := waitTrace(ctx, t, jc, id)
			server := false
			for _, s := range tr.Spans {
				switch kind, _ := s.Tag("span.kind"); kind {
				case "server":
					server = true
				case "client":
					t.Errorf("trace %s of the naive leak holds a client span %q: plain otelhttp should never end it", id, s.OperationName)
				}
			}
			if !server {
				t.Errorf("trace %s has no server span", id)
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

// errorType matches a client span whose error.type is one of want.
func errorType(want ...string) func(jaeger.Trace, jaeger.Span) (jaeger.Log, bool) {
	return func(_ jaeger.Trace, s jaeger.Span) (jaeger.Log, bool) {
		kind, _ := s.Tag("span.kind")
		et, _ := s.Tag("error.type")
		for _, w := range want {
			if kind == "client" && et == w {
				return jaeger.Log{}, true
			}
		}
		return jaeger.Log{}, false
	}
}

// waitTrace polls Jaeger until it holds trace id (exporters flush in
// batches, Jaeger stores ~0.2s later).
func waitTrace(ctx context.Context, t *testing.T, jc *jaeger.Client, id string) jaeger.Trace {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		tr, err := jc.Trace(ctx, id)
		if err == nil {
			return tr
		}
		if !errors.Is(err, jaeger.ErrNotFound) || time.Now().After(deadline) {
			t.Fatalf("trace %s: %v", id, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitFor polls trace id until one of its spans matches, and returns it.
func waitFor(ctx context.Context, t *testing.T, jc *jaeger.Client, id string, match func(jaeger.Trace, jaeger.Span) (jaeger.Log, bool)) (jaeger.Span, jaeger.Log) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		tr := waitTrace(ctx, t, jc, id)
		for _, s := range tr.Spans {
			if l, ok := match(tr, s); ok {
				return s, l
			}
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(tr, "", " ")
			t.Fatalf("trace %s (%s/trace/%s): no matching span; trace:\n%.6000s", id, jaeger.QueryURL, id, b)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
