package main

import (
	"bufio"
	"context"
	"encoding/json"
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

	"github.com/telltale-go/telltale/demo/internal/gateway"
	"github.com/telltale-go/telltale/demo/internal/upstream"
)

// upstreamSet is the three upstreams one gateway calls. Each gateway has its
// own, so that the connections one gateway leaks are counted against it
// alone and do not disturb the others.
type upstreamSet []*upstream.Server

func startUpstreams(cfg upstream.Config) (upstreamSet, error) {
	return gateway.StartUpstreams(cfg)
}

// setFaults switches the named upstreams to their fault, every other one to
// healthy.
func (set upstreamSet) setFaults(faults map[string]upstream.Fault) error {
	for _, s := range set {
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

func (set upstreamSet) openConns() int64 {
	var n int64
	for _, s := range set {
		n += s.OpenConns()
	}
	return n
}

func (set upstreamSet) close() {
	for _, s := range set {
		_ = s.Close()
	}
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
	ups     upstreamSet
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
}

// startGateway runs this same executable as a gateway and waits until it
// serves.
func startGateway(ctx context.Context, spec gatewaySpec, ups upstreamSet) (*gatewayProc, error) {
	mode, logFile := spec.mode, spec.logFile
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	upstreams, err := json.Marshal(gateway.Describe(ups))
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
		args = append(args, "-anomaly-budget", strconv.Itoa(spec.anomalyBudget), "-trace-url", spec.traceURL)
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
// call's included.
func (g *gatewayProc) stats(ctx context.Context, gc bool) (gateway.Stats, error) {
	q := url.Values{"since": {strconv.FormatInt(g.lastSeq, 10)}, "overruns_since": {strconv.FormatInt(g.overrunsBase, 10)}}
	if gc {
		q.Set("gc", "1")
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
