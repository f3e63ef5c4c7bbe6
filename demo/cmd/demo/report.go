package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/telltale-go/telltale/demo/internal/gateway"
	"github.com/telltale-go/telltale/demo/internal/jaeger"
	"github.com/telltale-go/telltale/demo/internal/telemetry"
	"github.com/telltale-go/telltale/demo/internal/upstream"
	"github.com/telltale-go/telltale/vocab"
)

func ms(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%dµs", d.Microseconds())
	}
}

func mib(b uint64) string { return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20)) }

// reportInfo is what the report says about how the run was set up.
type reportInfo struct {
	// queryURL is Jaeger's query service; empty when the traces went to
	// the user's own collector.
	queryURL      string
	sample        float64
	anomalyBudget int
	echo          string // the guarded gateway's Echo major
	fleet         bool   // the traces went to the tail-sampling fleet
}

// printReport writes the comparison table, then what telltale reported in
// the guarded gateway, then what Jaeger holds.
func printReport(out io.Writer, results []scenarioResult, info reportInfo) {
	queryURL := info.queryURL
	fmt.Fprintln(out)
	fmt.Fprintln(out, "REPORT — same load, same faults; each gateway has its own upstreams")
	fmt.Fprintln(out)
	fmt.Fprintln(out, "  naive      the incident's original code: default client, WaitGroup fan-out that waits for the slowest upstream")
	fmt.Fprintf(out, "  first-fix  the same, the fan-out raced against time.After(%s): the incident's first fix\n", ms(gateway.FirstFixTimeout))
	fmt.Fprintf(out, "  guarded    the same handlers with telltale, on Echo %s: %s request deadline, errgroup fan-out, partial answers\n", info.echo, ms(gateway.GuardedDeadline))
	fmt.Fprintf(out, "  upstreams  articles, users, ads: telltale services too (Echo v4): the caller's deadline (Connect-Timeout-Ms), a %s\n", upstream.DefaultSlowRequest)
	fmt.Fprintln(out, "             slow threshold of their own, and their spans in the caller's trace")
	if info.fleet {
		fmt.Fprintln(out, "  sampling   -fleet: every service keeps every trace at the head; the Jaeger fleet's collector tier keeps the")
		fmt.Fprintln(out, "             traces a span of which says telltale.anomaly=true, whole, and 10% of the others (see FLEET below)")
	} else {
		fmt.Fprintf(out, "  sampling   every service keeps %s of traces at the head, ParentBased(TraceIDRatioBased(%g)); guarded and the\n", percent(info.sample), info.sample)
		fmt.Fprintf(out, "             upstreams also export the requests they dropped in which telltale found an anomaly, at most %d traces/s each\n", info.anomalyBudget)
	}
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tgateway\treqs\tok\tpartial\terrors\tp50\tp99\tmax\tin flight peak\tgoroutines before→peak→after\tupstream conns peak→after\theap peak→after\tsampled client spans never ended\t")
	for _, sc := range results {
		for i, g := range sc.Gateways {
			name := sc.Name
			if sc.OneByOne {
				name += "*"
			}
			if i > 0 {
				name = ""
			}
			stats := fmt.Sprintf("%d→%d→%d\t%d→%d\t%s→%s\t%d", g.GoroutinesBefore, g.GoroutinesPeak, g.GoroutinesAfter,
				g.ConnsPeak, g.ConnsAfter, mib(g.HeapPeak), mib(g.HeapAfter), g.ClientSpansOpen)
			if g.StatsErr != "" {
				stats = fmt.Sprintf("?\t%d→%d\t?\t?", g.ConnsPeak, g.ConnsAfter)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%d\t%s\t\n",
				name, g.Gateway, g.Summary.Requests, g.Summary.OK, g.Partial, g.Summary.Errors,
				ms(g.Summary.P50), ms(g.Summary.P99), ms(g.Summary.Max), g.Summary.InFlightPeak, stats)
		}
	}
	_ = tw.Flush()
	fmt.Fprintln(out, "\n(ok counts 2xx answers, partial those of them missing an optional upstream; \"in flight peak\" the most")
	fmt.Fprintln(out, " requests awaiting their answer at once; \"sampled client spans never ended\" is the gateway's running total of")
	fmt.Fprintln(out, " client spans that were recorded and never ended, so never exported. A gateway records only the spans of")
	fmt.Fprintf(out, " the requests its head sampler kept (%s of them) and, guarded, the spans telltale replays, which end: the\n", percent(info.sample))
	fmt.Fprintln(out, " calls of the other requests are not counted there; \"upstream conns\" counts every connection.)")
	for _, sc := range results {
		if sc.OneByOne {
			fmt.Fprintf(out, "(%s*: the gateways ran one after another, each with the machine to itself; run at the same time, the\n", sc.Name)
			fmt.Fprintln(out, " naive gateways' decoding starves the guarded one of CPU: see CPU below, and -one-by-one.)")
		}
		for _, g := range sc.Gateways {
			if g.StatsErr != "" {
				fmt.Fprintf(out, "(%s/%s: ? = the gateway did not answer its statistics in time: %s)\n", sc.Name, g.Gateway, g.StatsErr)
			}
		}
	}
	for _, sc := range results {
		var outage time.Duration
		for _, g := range sc.Gateways {
			outage = max(outage, g.Outage)
		}
		if outage > 0 {
			fmt.Fprintf(out, "(%s: the outage lasted %s, from before the first request until %s after the last; then the\n", sc.Name, ms(outage), ms(outageTail))
			fmt.Fprintln(out, " upstream came back and answered what it held, and \"after\" was measured once every answer was in.)")
		}
	}

	printCPU(out, results)

	if hasGateway(results, modeGuarded) {
		fmt.Fprintln(out, "\nWHAT TELLTALE REPORTED in gateway-guarded (events and error types on the client spans it exported: the sampled")
		fmt.Fprintln(out, "requests', and the anomalous calls of the unsampled requests, replayed):")
		for _, sc := range results {
			for _, g := range sc.Gateways {
				if g.Gateway != modeGuarded {
					continue
				}
				lines := telltaleLines(g, queryURL)
				if len(lines) == 0 {
					fmt.Fprintf(out, "  %-9s nothing to report\n", sc.Name)
				}
				for i, l := range lines {
					name := sc.Name
					if i > 0 {
						name = ""
					}
					fmt.Fprintf(out, "  %-9s %s\n", name, l)
				}
			}
		}
	}

	printUpstreams(out, results)

	if hasGateway(results, modeNaive) || hasGateway(results, modeFirstFix) {
		fmt.Fprintln(out, "\nWHAT PLAIN OTELHTTP SHOWS in gateway-naive and gateway-first-fix (the client spans of their sampled requests")
		fmt.Fprintln(out, "that ended: all they export), and what users got:")
		for _, sc := range results {
			i := 0
			for _, g := range sc.Gateways {
				if g.Gateway == modeGuarded {
					continue
				}
				et := countList(g.ErrorTypes)
				if et == "" {
					et = "none"
				}
				name := sc.Name
				if i > 0 {
					name = ""
				}
				i++
				fmt.Fprintf(out, "  %-9s %-9s client span errors: %s; answers: %s\n", name, g.Gateway, et, countList(g.Answers))
			}
		}
	}

	var services []string
	for _, sc := range results {
		for _, g := range sc.Gateways {
			if !slices.Contains(services, g.Service) {
				services = append(services, g.Service)
			}
		}
		break
	}
	services = append(services, gateway.UpstreamNames...)
	if queryURL == "" {
		fmt.Fprintf(out, "\nTraces went to your own collector, under services %s.\n", strings.Join(services, ", "))
		fmt.Fprintln(out, "The Jaeger check (which requests' traces were kept) was skipped: it needs the demo's Jaeger query API.")
		return
	}
	printJaeger(out, results, info, services)
	if info.fleet {
		printFleet(out, results)
	}
}

// printUpstreams writes what the upstreams, telltale services of their
// own, exported: their server spans, sampled or replayed, in their
// callers' traces.
func printUpstreams(out io.Writer, results []scenarioResult) {
	fmt.Fprintln(out, "\nWHAT THE UPSTREAMS REPORTED (server spans each exported, sampled or replayed, in its caller's trace: by")
	fmt.Fprintln(out, "status, the findings on them, and the anomalous requests its budget refused):")
	for _, sc := range results {
		for i, g := range sc.Gateways {
			name := sc.Name
			if i > 0 {
				name = ""
			}
			var parts []string
			for _, u := range g.Upstreams {
				if u.Servers.Ended == 0 {
					continue
				}
				p := fmt.Sprintf("%s %d", u.Service, u.Servers.Ended)
				if u.Servers.Replayed > 0 {
					p += fmt.Sprintf(" (%d replayed)", u.Servers.Replayed)
				}
				details := countList(u.Servers.Status)
				if m := countList(u.Servers.Marks); m != "" {
					details += "; " + m
				}
				if a := u.AnomalyTraces; a != nil && a.OverBudget > 0 {
					details += fmt.Sprintf("; %d more over its budget, not exported", a.OverBudget)
				}
				parts = append(parts, p+" ["+details+"]")
			}
			line := strings.Join(parts, ", ")
			if line == "" {
				line = "nothing exported"
			}
			fmt.Fprintf(out, "  %-9s behind %-9s %s\n", name, g.Gateway, line)
		}
	}
}

// printCPU writes what each gateway process got of the CPUs, and how late
// the guarded gateway's handlers ended.
func printCPU(out io.Writer, results []scenarioResult) {
	fmt.Fprintf(out, "\nCPU — what each gateway process got of the machine's %d CPUs, from before the load until \"after\":\n", runtime.NumCPU())
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tgateway\twall\tCPU used\tthreads waiting for a CPU\tprobe's worst delay\thandlers past their deadline\t")
	for _, sc := range results {
		for i, g := range sc.Gateways {
			name := sc.Name
			if sc.OneByOne {
				name += "*"
			}
			if i > 0 {
				name = ""
			}
			if g.StatsErr != "" {
				fmt.Fprintf(tw, "%s\t%s\t?\t?\t?\t?\t?\t\n", name, g.Gateway)
				continue
			}
			past := "-"
			if g.Gateway == modeGuarded {
				past = "0"
				if g.Overruns > 0 {
					past = fmt.Sprintf("%d, by up to %s", g.Overruns, ms(g.OverrunMax))
				}
			}
			share := 0.0
			if g.Wall > 0 {
				share = 100 * g.CPU.Seconds() / g.Wall.Seconds()
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s (%.0f%%)\t%s\t%s\t%s\t\n", name, g.Gateway, ms(g.Wall), ms(g.CPU), share, ms(g.RunQueueWait), ms(g.ProbeDelayMax), past)
		}
	}
	_ = tw.Flush()
	fmt.Fprintln(out, "\n(CPU used is the process's user and system time, its share of one CPU in brackets; \"threads waiting")
	fmt.Fprintln(out, " for a CPU\" sums the time its threads were runnable and not running (Linux schedstat); the probe is a")
	fmt.Fprintf(out, " goroutine of the process that sleeps %s in a loop, its worst delay how late it woke up. A gateway\n", ms(gateway.ProbeInterval))
	fmt.Fprintln(out, " that used little CPU while its threads waited and its probe woke up hundreds of ms late was starved:")
	fmt.Fprintln(out, " its latencies then measure the machine, not its code. \"handlers past their deadline\" counts guarded's")
	fmt.Fprintf(out, " server spans with %s.)\n", vocab.AttrDeadlineOverrun)
}

// printJaeger writes which requests' traces Jaeger holds.
func printJaeger(out io.Writer, results []scenarioResult, info reportInfo, services []string) {
	queryURL := info.queryURL
	fmt.Fprintln(out, "\nJAEGER — each request's trace looked up by the id its answer carried (X-Trace-Id), /api/traces/{id}:")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tgateway\trequests\tin Jaeger\tanomalous\tin Jaeger\tover budget\t  example (Jaeger UI)")
	var partial []string
	for _, sc := range results {
		for i, g := range sc.Gateways {
			name := sc.Name
			if i > 0 {
				name = ""
			}
			c := g.Jaeger
			if c == nil {
				fmt.Fprintf(tw, "%s\t%s\t%d\t-\t%d\t-\t\t  not checked\n", name, g.Gateway, g.Summary.Requests, g.Anomalous)
				continue
			}
			over := ""
			if g.AnomalyTraces != nil {
				over = fmt.Sprint(g.AnomalyTraces.OverBudget)
			}
			anomalousFound := "-"
			if g.Anomalous > 0 {
				anomalousFound = fmt.Sprint(c.AnomalousFound)
			}
			example := "none found"
			if c.Example != "" {
				example = jaeger.TraceURL(queryURL, c.Example)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\t  %s\n", name, g.Gateway, g.Summary.Requests, c.Found, g.Anomalous, anomalousFound, over, example)
			if c.Partial != "" {
				partial = append(partial, fmt.Sprintf("%s/%s: %s", sc.Name, g.Gateway, c.Partial))
			}
			if g.Gateway == modeGuarded && g.AnomalyTraces != nil {
				unseen := int64(c.AnomalousLooked-c.AnomalousFound) - g.AnomalyTraces.OverBudget
				if unseen > 0 && c.Partial == "" {
					partial = append(partial, fmt.Sprintf("%s/%s: %d anomalous requests are not in Jaeger and were not over the budget: telltale\n"+
						"        found no anomaly in them and the handler reported none (middleware.ReportAnomaly), so the head\n"+
						"        sampler's decision stood",
						sc.Name, g.Gateway, unseen))
				}
			}
			if missing := g.Anomalous - len(g.AnomalousTraceIDs); missing > 0 {
				partial = append(partial, fmt.Sprintf("%s/%s: %d anomalous requests got no answer, so no trace id to look up", sc.Name, g.Gateway, missing))
			}
		}
	}
	_ = tw.Flush()
	fmt.Fprintln(out, "\n(anomalous: answered with an error status or not at all, answered a partial feed, or served on the leaking")
	if info.fleet {
		fmt.Fprintf(out, " route %s. Every service exported every trace; the collector tier kept those a span of which says\n", gateway.CountPath)
		fmt.Fprintln(out, " telltale.anomaly=true, whichever service's, and a tenth of the others: see FLEET below.)")
	} else {
		fmt.Fprintf(out, " route %s. naive and first-fix export what head sampling keeps, about %s of traces; guarded also exports\n", gateway.CountPath, percent(info.sample))
		fmt.Fprintf(out, " the requests in which telltale found an anomaly — a failed, slow or 5xx call, a leaked body, a 5xx, 504 or\n")
		fmt.Fprintf(out, " overrun — at most %d traces/s: \"over budget\" counts those refused, from the sampler's metric\n", info.anomalyBudget)
		fmt.Fprintf(out, " %s.)\n", vocab.MetricAnomalyTracesDropped)
	}
	for _, p := range partial {
		fmt.Fprintf(out, "  note: %s\n", p)
	}
	fmt.Fprintln(out, "\nIn the Jaeger UI (the official image, see README) and the query API:")
	for _, s := range services {
		fmt.Fprintf(out, "  %s/search?service=%s   %s\n", queryURL, s, jaeger.TracesURL(queryURL, s))
	}
}

// hasGateway reports whether results include gateway mode.
func hasGateway(results []scenarioResult, mode string) bool {
	for _, sc := range results {
		for _, g := range sc.Gateways {
			if g.Gateway == mode {
				return true
			}
		}
	}
	return false
}

// percent writes a ratio as a percentage.
func percent(r float64) string {
	return strconv.FormatFloat(r*100, 'g', 4, 64) + "%"
}

// telltaleLines summarises a guarded gateway's findings in one scenario.
func telltaleLines(g gatewayResult, queryURL string) []string {
	var lines []string
	if n := g.Events[telemetry.EventLeaked]; n > 0 {
		sites := map[string]int{}
		var example telemetry.Finding
		for _, f := range g.Findings {
			if f.Event != telemetry.EventLeaked {
				continue
			}
			site := fmt.Sprintf("%s:%s (%s, %s)", shortPath(f.Attrs["code.file.path"]), f.Attrs["code.line.number"], f.Attrs[vocab.AttrLeakReason], shortFunc(f.Attrs["code.function.name"]))
			sites[site]++
			if example.TraceID == "" {
				example = f
			}
		}
		lines = append(lines, fmt.Sprintf("%d × %s at %s", n, telemetry.EventLeaked, strings.Join(slices.Sorted(maps.Keys(sites)), "; ")))
		lines = append(lines, "  e.g. trace "+traceRef(example.TraceID, queryURL))
	}
	if n := g.Events[telemetry.EventSlow]; n > 0 {
		kinds := map[string]int{}
		var example telemetry.Finding
		for _, f := range g.Findings {
			if f.Event != telemetry.EventSlow {
				continue
			}
			kinds[fmt.Sprintf("%s > %sms", f.Attrs[vocab.AttrSlowKind], f.Attrs[vocab.AttrSlowThreshold])]++
			if example.TraceID == "" {
				example = f
			}
		}
		lines = append(lines, fmt.Sprintf("%d × %s (%s)", n, telemetry.EventSlow, strings.Join(slices.Sorted(maps.Keys(kinds)), ", ")))
		lines = append(lines, "  e.g. trace "+traceRef(example.TraceID, queryURL))
	}
	if et := countList(g.ErrorTypes); et != "" {
		lines = append(lines, "client span errors: "+et)
	}
	if a := g.AnomalyTraces; a != nil && (a.Exported > 0 || a.OverBudget > 0) {
		lines = append(lines, fmt.Sprintf("traces of unsampled requests exported for an anomaly: %d; over the budget, not exported: %d", a.Exported, a.OverBudget))
	}
	return lines
}

func traceRef(id, queryURL string) string {
	if queryURL == "" {
		return id
	}
	return id + "  " + jaeger.TraceURL(queryURL, id)
}

func countList[V int | int64](m map[string]V) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s×%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// shortFunc drops the import path of a function name.
func shortFunc(f string) string {
	if i := strings.LastIndex(f, "/"); i >= 0 {
		return f[i+1:]
	}
	return f
}

// shortPath keeps the path from the demo module down, which is what a
// reader finds in the repository.
func shortPath(p string) string {
	if i := strings.Index(p, "/demo/"); i >= 0 {
		return p[i+1:]
	}
	return p
}

func writeJSON(path string, results []scenarioResult) error {
	b, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return nil
}
