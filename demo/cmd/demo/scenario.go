package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/telltale-go/telltale/demo/internal/gateway"
	"github.com/telltale-go/telltale/demo/internal/load"
	"github.com/telltale-go/telltale/demo/internal/telemetry"
	"github.com/telltale-go/telltale/demo/internal/upstream"
)

// scenario is one situation every gateway is put through.
type scenario struct {
	name   string
	about  string
	path   string
	faults map[string]upstream.Fault
	// outage: the faults last while the load is sent and [outageTail]
	// longer, then the upstreams come back (a black hole then answers what
	// it held), so that requests stuck on them end and what they leave
	// behind can be measured. Other faults last until every answer is in.
	outage bool
}

// outageTail is how long an outage outlasts the sending of the load: longer
// than the first fix's timeout, so that every request meets the outage.
const outageTail = gateway.FirstFixTimeout + 500*time.Millisecond

var scenarios = []scenario{
	{"healthy", "every upstream healthy", gateway.FeedPath, nil, false},
	{"slow", "ads answers after 400ms", gateway.FeedPath, map[string]upstream.Fault{"ads": upstream.Slow}, false},
	{"leak", "GET /api/count, whose handler never closes the body", gateway.CountPath, nil, false},
	{"dead", "users is down: connection refused", gateway.FeedPath, map[string]upstream.Fault{"users": upstream.Dead}, false},
	{"5xx", "ads answers 503", gateway.FeedPath, map[string]upstream.Fault{"ads": upstream.Error}, false},
	{"blackhole", "ads accepts connections and never answers, until 2.5s after the last request", gateway.FeedPath, map[string]upstream.Fault{"ads": upstream.BlackHole}, true},
	{"trickle", "ads sends its body 16 bytes every 100ms", gateway.FeedPath, map[string]upstream.Fault{"ads": upstream.Trickle}, false},
	{"huge", "ads answers with a 4 MiB body", gateway.FeedPath, map[string]upstream.Fault{"ads": upstream.Huge}, false},
}

// patience is how long the load driver waits for an answer past the end of
// sending: long enough for a request held by an outage to be answered when
// the outage ends, bounded so that the demo never hangs.
const patience = 30 * time.Second

func scenarioByName(name string) (scenario, bool) {
	for _, s := range scenarios {
		if s.name == name {
			return s, true
		}
	}
	return scenario{}, false
}

// gatewayResult is what one gateway did in one scenario.
type gatewayResult struct {
	Gateway string       `json:"gateway"`
	Service string       `json:"service"`
	Summary load.Summary `json:"summary"`
	// Partial counts 200 answers that left an optional upstream out.
	Partial int `json:"partial"`
	// Goroutines and open connections to its upstreams: before the load,
	// at the peak during it, and after it (once the settle time passed).
	GoroutinesBefore int    `json:"goroutines_before"`
	GoroutinesPeak   int    `json:"goroutines_peak"`
	GoroutinesAfter  int    `json:"goroutines_after"`
	ConnsPeak        int64  `json:"conns_peak"`
	ConnsAfter       int64  `json:"conns_after"`
	HeapPeak         uint64 `json:"heap_peak"`
	HeapAfter        uint64 `json:"heap_after"`
	// Overruns counts the server spans of handlers that ran past their
	// deadline (guarded), OverrunMax the largest overrun.
	Overruns   int64         `json:"overruns"`
	OverrunMax time.Duration `json:"overrun_max_ns"`
	// CPU is what the gateway process got of the CPUs from before the load
	// until after it: CPU time used, thread time spent waiting for a CPU,
	// and the largest delay of its probe goroutine's wake-ups, over
	// Wall of elapsed time. A gateway whose probe woke up late while it
	// used little CPU was starved by its neighbours.
	CPU           time.Duration `json:"cpu_ns"`
	RunQueueWait  time.Duration `json:"runqueue_wait_ns"`
	ProbeDelayMax time.Duration `json:"probe_delay_max_ns"`
	Wall          time.Duration `json:"wall_ns"`
	// ClientSpansOpen counts the recorded client spans the gateway started
	// since it began that had not ended when the scenario was over: spans
	// that are not exported although recorded. The gateway records only the
	// spans of sampled requests (and, guarded, the spans telltale replays),
	// so with head sampling it counts the sampled requests' alone.
	ClientSpansOpen int64               `json:"client_spans_open"`
	ErrorTypes      map[string]int64    `json:"error_types"`
	Events          map[string]int64    `json:"events"`
	Findings        []telemetry.Finding `json:"findings,omitempty"`
	// TraceIDs are the trace ids of the scenario's requests, in order.
	TraceIDs []string `json:"trace_ids"`
	// Anomalous counts the requests that were anomalous: answered with an
	// error status or not at all, answered a partial feed, or served on
	// the leaking route. AnomalousTraceIDs are their trace ids (a request
	// that got no answer has none).
	Anomalous         int      `json:"anomalous"`
	AnomalousTraceIDs []string `json:"anomalous_trace_ids"`
	// AnomalyTraces (guarded only) are what telltale's sampler did during
	// the scenario: anomaly traces of unsampled requests exported, and
	// refused over its budget.
	AnomalyTraces *telemetry.AnomalyCounts `json:"anomaly_traces,omitempty"`
	// Jaeger is what Jaeger holds of the scenario's traces; nil when they
	// were not looked up.
	Jaeger *jaegerCheck `json:"jaeger,omitempty"`
	// Answers counts the answers by HTTP status ("no answer" when none came).
	Answers map[string]int `json:"answers"`
	// Outage is how long the faults of an outage scenario lasted for this
	// gateway's upstreams: from before its first request until its last
	// request was sent.
	Outage time.Duration `json:"outage_ns,omitempty"`
	// Errors are a few distinct client-side errors, for the reader.
	Errors []string `json:"errors,omitempty"`
	// Upstreams are what the gateway's upstreams, telltale services of
	// their own, exported of the requests they served during the
	// scenario, in the order of gateway.UpstreamNames.
	Upstreams []upstreamResult `json:"upstreams,omitempty"`
	// spans are the spans each service on this gateway's side — the
	// gateway and its upstreams — ended during the scenario, by service
	// name and trace id: what the fleet's accounting compares with what
	// Jaeger kept.
	spans map[string]map[string]telemetry.TraceSpans
	// StatsErr says why the gateway's own figures (goroutines, heap, spans,
	// CPU) of this scenario are missing: it did not answer in time.
	StatsErr string `json:"stats_err,omitempty"`
}

// upstreamResult is what one upstream exported in one scenario.
type upstreamResult struct {
	Service string                 `json:"service"`
	Servers telemetry.ServerCounts `json:"servers"`
	// AnomalyTraces are what its sampler did during the scenario: anomaly
	// traces of requests its head sampler dropped, exported and refused
	// over its budget; nil at -fleet, which has no budget to spend.
	AnomalyTraces *telemetry.AnomalyCounts `json:"anomaly_traces,omitempty"`
}

// scenarioResult is one scenario's outcome for every gateway.
type scenarioResult struct {
	Name     string          `json:"name"`
	About    string          `json:"about"`
	Gateways []gatewayResult `json:"gateways"`
	// OneByOne says the gateways ran one after another, each with the
	// machine to itself, instead of at the same time.
	OneByOne bool `json:"one_by_one,omitempty"`
	// Fleet is, with -fleet, what the collector tier kept of each
	// service's traces.
	Fleet []fleetCount `json:"fleet,omitempty"`
}

// loadOptions are the -rps, -requests, -duration and -settle flags.
type loadOptions struct {
	rps      float64
	requests int
	duration time.Duration
	settle   time.Duration
}

// run puts every gateway through sc, each against its own upstreams: all at
// the same time, or one after another if sc is run one by one.
func (sc scenario) run(ctx context.Context, client *http.Client, gws []*gatewayProc, lo loadOptions, oneByOne bool, progress io.Writer) (scenarioResult, error) {
	res := scenarioResult{Name: sc.name, About: sc.about, Gateways: make([]gatewayResult, len(gws)), OneByOne: oneByOne}
	all := make([]int, len(gws))
	for i := range gws {
		all[i] = i
	}
	if !oneByOne {
		return res, sc.runGroup(ctx, client, gws, all, lo, "", progress, &res)
	}
	// The guarded gateway first: the abandoned calls of first-fix, still
	// decoding after its answers, would otherwise share its CPUs.
	slices.SortStableFunc(all, func(a, b int) int {
		return cmpBool(gws[a].mode != modeGuarded, gws[b].mode != modeGuarded)
	})
	for _, i := range all {
		if err := sc.runGroup(ctx, client, gws, []int{i}, lo, gws[i].mode+" alone: ", progress, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// cmpBool orders false before true.
func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	default:
		return 1
	}
}

// runGroup puts the gateways gws[idx] through sc at the same time, and
// writes what they did in res.Gateways[idx].
func (sc scenario) runGroup(ctx context.Context, client *http.Client, gws []*gatewayProc, idx []int, lo loadOptions, label string, progress io.Writer, res *scenarioResult) error {
	for _, i := range idx {
		if err := gws[i].ups.setFaults(sc.faults); err != nil {
			return err
		}
	}
	faulted := time.Now()
	defer func() {
		for _, i := range idx {
			_ = gws[i].ups.setFaults(nil)
		}
	}()

	before := make([]gateway.Stats, len(gws))
	beforeAt := make([]time.Time, len(gws))
	upsBefore := make([]map[string]upstreamSnapshot, len(gws))
	for _, i := range idx {
		g := gws[i]
		res.Gateways[i] = gatewayResult{Gateway: g.mode, Service: g.service}
		// What the upstreams ended before the scenario is forgotten.
		upsBefore[i] = g.ups.snapshots(true)
		st, err := g.stats(ctx, true, true)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// A gateway too busy to answer in time: its figures of this
			// scenario are unknown, its load is still sent and measured.
			fmt.Fprintf(progress, "    %v\n", err)
			res.Gateways[i].StatsErr = err.Error()
			continue
		}
		before[i], beforeAt[i] = st, time.Now()
		g.lastSeq = st.Spans.LastSeq
		g.overrunsBase = st.Spans.Overruns
		res.Gateways[i].GoroutinesBefore = st.Goroutines
	}

	// Sample goroutines, heap and connections while the load runs.
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var sampling sync.WaitGroup
	var mu sync.Mutex
	sampling.Go(func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, i := range idx {
				g := gws[i]
				conns := g.ups.openConns()
				st, err := g.stats(sampleCtx, false, false)
				mu.Lock()
				r := &res.Gateways[i]
				r.ConnsPeak = max(r.ConnsPeak, conns)
				if err == nil {
					r.GoroutinesPeak = max(r.GoroutinesPeak, st.Goroutines)
					r.HeapPeak = max(r.HeapPeak, st.HeapInuse)
					r.ProbeDelayMax = max(r.ProbeDelayMax, st.CPU.ProbeDelayMax)
				}
				mu.Unlock()
			}
			select {
			case <-sampleCtx.Done():
				return
			case <-tick.C:
			}
		}
	})

	start := time.Now()
	results := make([][]load.Result, len(gws))
	outages := make([]time.Duration, len(gws))
	var driving sync.WaitGroup
	for _, i := range idx {
		g := gws[i]
		cfg := load.Config{
			URL:      g.url + sc.path,
			RPS:      lo.rps,
			Requests: lo.requests,
			Duration: lo.duration,
			Header:   []string{gateway.TraceIDHeader, gateway.MissingHeader},
		}
		cfg.Timeout = cfg.SendTime() + patience
		if sc.outage {
			cfg.Sent = func() {
				select {
				case <-ctx.Done():
				case <-time.After(outageTail):
				}
				// The stuck service comes back: what it held is answered.
				outages[i] = time.Since(faulted)
				if err := g.ups.setFaults(nil); err != nil {
					fmt.Fprintf(progress, "    %s: ending the outage: %v\n", g.mode, err)
				}
			}
		}
		driving.Go(func() { results[i] = load.Run(ctx, client, cfg) })
	}
	driving.Wait()
	if err := ctx.Err(); err != nil {
		// Interrupted: the answers are cancellations, nothing to measure.
		stopSampling()
		sampling.Wait()
		return err
	}
	// The users are gone: their idle connections to the gateways would
	// otherwise count in the gateways' goroutines after the load.
	client.CloseIdleConnections()
	fmt.Fprint(progress, "    "+label)
	if sc.outage {
		fmt.Fprintf(progress, "outage of %s, then its upstreams came back; ", ms(slices.Max(outages)))
	}
	fmt.Fprintf(progress, "load sent and answered in %s; settling %s\n", time.Since(start).Round(100*time.Millisecond), lo.settle)
	select {
	case <-ctx.Done():
	case <-time.After(lo.settle):
	}
	stopSampling()
	sampling.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}

	for _, i := range idx {
		g := gws[i]
		r := &res.Gateways[i]
		sc.summarize(r, results[i])
		r.Outage = outages[i]
		r.ConnsAfter = g.ups.openConns()
		r.ConnsPeak = max(r.ConnsPeak, r.ConnsAfter)
		r.spans = map[string]map[string]telemetry.TraceSpans{}
		upsAfter := g.ups.snapshots(true)
		for _, name := range gateway.UpstreamNames {
			a, ok := upsAfter[name]
			if !ok {
				continue
			}
			u := upstreamResult{Service: name, Servers: a.servers.Sub(upsBefore[i][name].servers)}
			if b := upsBefore[i][name].anomalies; a.anomalies != nil && b != nil {
				u.AnomalyTraces = &telemetry.AnomalyCounts{Exported: a.anomalies.Exported - b.Exported, OverBudget: a.anomalies.OverBudget - b.OverBudget}
			}
			r.Upstreams = append(r.Upstreams, u)
			r.spans[name] = a.traces
		}
		if r.StatsErr != "" {
			continue
		}
		st, err := g.stats(ctx, true, true)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fmt.Fprintf(progress, "    %v\n", err)
			r.StatsErr = err.Error()
			continue
		}
		r.GoroutinesAfter = st.Goroutines
		r.HeapAfter = st.HeapInuse
		r.Wall = time.Since(beforeAt[i])
		r.CPU = st.CPU.Time - before[i].CPU.Time
		r.RunQueueWait = st.CPU.RunQueueWait - before[i].CPU.RunQueueWait
		r.ProbeDelayMax = max(r.ProbeDelayMax, st.CPU.ProbeDelayMax)
		r.GoroutinesPeak = max(r.GoroutinesPeak, r.GoroutinesAfter, r.GoroutinesBefore)
		b := before[i].Spans
		r.ClientSpansOpen = st.Spans.ClientStarted - st.Spans.ClientEnded
		r.ErrorTypes = telemetry.Diff(st.Spans.ErrorTypes, b.ErrorTypes)
		r.Events = telemetry.Diff(st.Spans.Events, b.Events)
		r.spans[g.service] = st.Traces
		r.Findings = st.Spans.Findings
		r.Overruns = st.Spans.Overruns - b.Overruns
		r.OverrunMax = st.Spans.OverrunMax
		g.lastSeq = st.Spans.LastSeq
		if a, b := st.Anomalies, before[i].Anomalies; a != nil && b != nil {
			r.AnomalyTraces = &telemetry.AnomalyCounts{Exported: a.Exported - b.Exported, OverBudget: a.OverBudget - b.OverBudget}
		}
	}
	return nil
}

// summarize condenses one gateway's load results into r.
func (sc scenario) summarize(r *gatewayResult, results []load.Result) {
	r.Summary = load.Summarize(results)
	seen := map[string]bool{}
	r.Answers = map[string]int{}
	for _, lr := range results {
		if lr.Status == 0 {
			r.Answers["no answer"]++
		} else {
			r.Answers[strconv.Itoa(lr.Status)]++
		}
		partial := lr.Header[gateway.MissingHeader] != "" && lr.Status == http.StatusOK
		if partial {
			r.Partial++
		}
		failed := lr.Err != "" || lr.Status < 200 || lr.Status >= 300
		anomalous := failed || partial || sc.path == gateway.CountPath
		id := lr.Header[gateway.TraceIDHeader]
		if id != "" {
			r.TraceIDs = append(r.TraceIDs, id)
		}
		if anomalous {
			r.Anomalous++
			if id != "" {
				r.AnomalousTraceIDs = append(r.AnomalousTraceIDs, id)
			}
		}
		if lr.Err != "" && !seen[lr.Err] && len(r.Errors) < 3 {
			seen[lr.Err] = true
			r.Errors = append(r.Errors, lr.Err)
		}
	}
}
