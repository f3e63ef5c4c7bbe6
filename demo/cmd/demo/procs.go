package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/demo/internal/gateway"
	"github.com/telltale-go/telltale/demo/internal/telemetry"
	"github.com/telltale-go/telltale/demo/internal/upstream"
)

// upstreamSet is the three upstreams one gateway calls, each a telltale
// service of its own (service.name articles, users, ads), traced by a
// provider of its own in the runner's process. Each gateway has its own
// set, so that the connections one gateway leaks are counted against it
// alone and do not disturb the others.
type upstreamSet struct {
	servers []*upstream.Server
	// telemetry is each server's provider and recorder, in the order they
	// were made.
	telemetry []upstreamTelemetry
}

// upstreamTelemetry is one upstream's tracer provider and the recorder
// registered on it.
type upstreamTelemetry struct {
	service   string
	tp        *sdktrace.TracerProvider
	rec       *telemetry.Recorder
	anomalies *telemetry.AnomalyCounter // nil without a sampling budget
}

// startUpstreams starts the three upstreams of one gateway, each traced by
// a provider built from tcfg under its own service name.
func startUpstreams(ctx context.Context, tcfg telemetry.Config) (*upstreamSet, error) {
	set := &upstreamSet{}
	cfg := upstream.Config{Logger: tcfg.Logger, TracerProvider: func(service string) (trace.TracerProvider, error) {
		c := tcfg
		c.Service = service
		if c.AnomalyBudget > 0 {
			c.Anomalies = telemetry.NewAnomalyCounter()
		}
		tp, rec, err := telemetry.NewProvider(ctx, c)
		if err != nil {
			if c.Anomalies != nil {
				_ = c.Anomalies.Shutdown(ctx)
			}
			return nil, err
		}
		set.telemetry = append(set.telemetry, upstreamTelemetry{service, tp, rec, c.Anomalies})
		return tp, nil
	}}
	servers, err := gateway.StartUpstreams(cfg)
	if err != nil {
		_ = set.shutdown(ctx)
		return nil, err
	}
	set.servers = servers
	return set, nil
}

// setFaults switches the named upstreams to their fault, every other one to
// healthy.
func (set *upstreamSet) setFaults(faults map[string]upstream.Fault) error {
	for _, s := range set.servers {
		f, ok := faults[s.Name()]
		if !ok {
			f = upstream.Healthy
		}
		if err := s.SetFault(f); err != nil {
			return err
		}
	}
	return nil
}

func (set *upstreamSet) openConns() int64 {
	var n int64
	for _, s := range set.servers {
		n += s.OpenConns()
	}
	return n
}

// close stops the servers; their providers are shut down by shutdown.
func (set *upstreamSet) close() {
	for _, s := range set.servers {
		_ = s.Close()
	}
}

// flush makes the upstreams' providers export every ended span now.
func (set *upstreamSet) flush(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var errs []error
	for _, t := range set.telemetry {
		if err := t.tp.ForceFlush(ctx); err != nil {
			errs = append(errs, fmt.Errorf("demo: flush upstream %s: %w", t.service, err))
		}
	}
	return errors.Join(errs...)
}

// shutdown flushes and stops the upstreams' providers.
func (set *upstreamSet) shutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	var errs []error
	for _, t := range set.telemetry {
		errs = append(errs, t.tp.Shutdown(ctx))
		if t.anomalies != nil {
			errs = append(errs, t.anomalies.Shutdown(ctx))
		}
	}
	return errors.Join(errs...)
}

// snapshots returns what each upstream's recorder counted of its server
// spans, by service, and, with traces, the spans each ended since the
// previous call with traces, by trace.
func (set *upstreamSet) snapshots(traces bool) map[string]upstreamSnapshot {
	out := make(map[string]upstreamSnapshot, len(set.telemetry))
	for _, t := range set.telemetry {
		snap := upstreamSnapshot{servers: t.rec.Snapshot(0, 0).Servers}
		if t.anomalies != nil {
			if n, err := t.anomalies.Counts(context.Background()); err == nil {
				snap.anomalies = &n
			}
		}
		if traces {
			snap.traces = t.rec.DrainTraces()
		}
		out[t.service] = snap
	}
	return out
}

// upstreamSnapshot is what one upstream's recorder held at a moment.
type upstreamSnapshot struct {
	servers   telemetry.ServerCounts
	anomalies *telemetry.AnomalyCounts // its sampler's totals, with a budget
	traces    map[string]telemetry.TraceSpans
}

// statsTimeout bounds a call to a gateway's stats or flush endpoint: a
// naive gateway decoding hundreds of 4 MiB bodies, on CPUs it shares with
// the others, has taken more than 10 s to answer one that collects garbage.
const statsTimeout = 30 * time.Second

// gatewayProc is a gateway running in a child process.
type gatewayProc struct {
	mode    string
	service string
	url     string
	ups     *upstreamSet
	cmd     *exec.Cmd
	stdin   io.Closer
	done    chan struct{}
	http    *http.Client
	lastSeq int64
	// overrunsBase is the gateway's overrun count when the scenario began:
	// the largest overrun asked for is among the later ones.
	overrunsBase int64
}

// gatewaySpec is how to start one gateway process.
type gatewaySpec struct {
	mode          string  // naive, first-fix or guarded
	service       string  // service.name of its traces
	otlp          string  // OTLP/HTTP base URL; empty: the OTEL_EXPORTER_OTLP_* variables
	logFile       string  // where its stderr goes
	sample        float64 // head-sampling ratio
	anomalyBudget int     // guarded: anomaly traces a second
	traceURL      string  // guarded: trace UI URL with {trace_id}, for the inspector
	echo          string  // guarded: the Echo major it runs on
}

// startGateway runs this same executable as a gateway and waits until it
// serves.
func startGateway(ctx context.Context, spec gatewaySpec, ups *upstreamSet) (*gatewayProc, error) {
	mode, logFile := spec.mode, spec.logFile
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	upstreams, err := json.Marshal(gateway.Describe(ups.servers))
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	log, err := os.Create(logFile)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	defer log.Close()
	args := []string{gatewayCommand, "-mode", mode, "-service", spec.service, "-otlp", spec.otlp, "-upstreams", string(upstreams),
		"-sample", strconv.FormatFloat(spec.sample, 'g', -1, 64)}
	if mode == modeGuarded {
		args = append(args, "-anomaly-budget", strconv.Itoa(spec.anomalyBudget), "-trace-url", spec.traceURL, "-echo", spec.echo)
	}
	cmd := exec.Command(self, args...)
	cmd.Stderr = log
	// Its own process group: on Ctrl-C the runner stops the gateways itself,
	// after flushing them.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("demo: start %s gateway: %w", mode, err)
	}
	g := &gatewayProc{mode: mode, service: spec.service, ups: ups, cmd: cmd, stdin: stdin, done: make(chan struct{}), http: &http.Client{Timeout: statsTimeout}}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), listeningPrefix); ok {
				addr <- u
			}
		}
		close(addr)
	}()
	go func() {
		_ = cmd.Wait()
		close(g.done)
	}()
	select {
	case u, ok := <-addr:
		if !ok {
			g.stop()
			return nil, fmt.Errorf("demo: %s gateway exited before serving; see %s", mode, logFile)
		}
		g.url = u
		return g, nil
	case <-time.After(30 * time.Second):
	case <-ctx.Done():
	}
	g.stop()
	return nil, fmt.Errorf("demo: %s gateway did not start; see %s", mode, logFile)
}

// stats fetches the gateway's [gateway.Stats], findings newer than the last
// call's included; with traces, the spans it ended since the previous call
// with traces, by trace.
func (g *gatewayProc) stats(ctx context.Context, gc, traces bool) (gateway.Stats, error) {
	q := url.Values{"since": {strconv.FormatInt(g.lastSeq, 10)}, "overruns_since": {strconv.FormatInt(g.overrunsBase, 10)}}
	if gc {
		q.Set("gc", "1")
	}
	if traces {
		q.Set("traces", "1")
	}
	var st gateway.Stats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.url+gateway.StatsPath+"?"+q.Encode(), nil)
	if err != nil {
		return st, fmt.Errorf("demo: %w", err)
	}
	resp, err := g.http.Do(req)
	if err != nil {
		return st, fmt.Errorf("demo: stats of %s: %w", g.mode, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("demo: stats of %s: %w", g.mode, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return st, nil
}

// flush makes the gateway export every ended span now.
func (g *gatewayProc) flush(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.url+gateway.FlushPath, nil)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	resp, err := g.http.Do(req)
	if err != nil {
		return fmt.Errorf("demo: flush %s: %w", g.mode, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusNoContent {
		// The body is the exporter's error, such as a refused connection.
		return fmt.Errorf("demo: flush %s: %s: %s", g.mode, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// stop asks the gateway to shut down (it flushes its traces), and kills it
// if it has not within 10s.
func (g *gatewayProc) stop() {
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	_ = g.stdin.Close()
	select {
	case <-g.done:
	case <-time.After(10 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.done
	}
}
