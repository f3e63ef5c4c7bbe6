package main

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/telltale-go/telltale/demo/internal/gateway"
	"github.com/telltale-go/telltale/demo/internal/jaeger"
	"github.com/telltale-go/telltale/demo/internal/telemetry"
)

// fleetCount is what the fleet's collector tier kept of one service's
// traces in one scenario. A trace is anomalous when a span of it, of any
// service, says telltale.anomaly=true: the tail sampler then keeps it
// whole; it keeps a tenth of the others, whole too.
type fleetCount struct {
	Service string `json:"service"`
	// AnomalousSent counts the anomalous traces the service exported
	// spans of; AnomalousKept those of which Jaeger holds some of its
	// spans, AnomalousWhole those of which it holds every one.
	AnomalousSent  int `json:"anomalous_sent"`
	AnomalousKept  int `json:"anomalous_kept"`
	AnomalousWhole int `json:"anomalous_whole"`
	// The same for the healthy traces.
	HealthySent  int `json:"healthy_sent"`
	HealthyKept  int `json:"healthy_kept"`
	HealthyWhole int `json:"healthy_whole"`
}

// accountFleet compares what each service of res exported, trace by trace,
// with the traces Jaeger holds (found, by trace id). Only the traces of the
// scenario's requests count: a span that ended late, of an earlier
// scenario's request, is left out.
func accountFleet(res *scenarioResult, found map[string]jaeger.Trace) []fleetCount {
	requests := map[string]bool{}
	var services []string
	sent := map[string]map[string]telemetry.TraceSpans{}
	for _, g := range res.Gateways {
		for _, id := range g.TraceIDs {
			requests[id] = true
		}
		for service, traces := range g.spans {
			if sent[service] == nil {
				sent[service] = map[string]telemetry.TraceSpans{}
			}
			for id, ts := range traces {
				prev := sent[service][id]
				sent[service][id] = telemetry.TraceSpans{Spans: prev.Spans + ts.Spans, Anomalous: prev.Anomalous || ts.Anomalous}
			}
		}
	}
	// The gateways in the report's order, then the upstreams.
	for _, g := range res.Gateways {
		services = append(services, g.Service)
	}
	services = append(services, gateway.UpstreamNames...)

	anomalous := map[string]bool{}
	for _, traces := range sent {
		for id, ts := range traces {
			anomalous[id] = anomalous[id] || ts.Anomalous
		}
	}
	var counts []fleetCount
	for _, service := range services {
		if _, ok := sent[service]; !ok || slices.ContainsFunc(counts, func(c fleetCount) bool { return c.Service == service }) {
			continue
		}
		c := fleetCount{Service: service}
		for id, ts := range sent[service] {
			if !requests[id] {
				continue
			}
			stored := 0
			if tr, ok := found[id]; ok {
				for _, s := range tr.Spans {
					if tr.Service(s) == service {
						stored++
					}
				}
			}
			kept, whole := stored > 0, stored >= ts.Spans
			if anomalous[id] {
				c.AnomalousSent++
				c.AnomalousKept += b2i(kept)
				c.AnomalousWhole += b2i(kept && whole)
			} else {
				c.HealthySent++
				c.HealthyKept += b2i(kept)
				c.HealthyWhole += b2i(kept && whole)
			}
		}
		counts = append(counts, c)
	}
	return counts
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// progressFleet sums up, for the progress lines, what the fleet kept in a
// scenario.
func progressFleet(res scenarioResult) string {
	if len(res.Fleet) == 0 {
		return ""
	}
	var a, aw, h, hk int
	for _, c := range res.Fleet {
		a += c.AnomalousSent
		aw += c.AnomalousWhole
		h += c.HealthySent
		hk += c.HealthyKept
	}
	return fmt.Sprintf("fleet, every service: anomalous traces kept whole %d/%d, healthy traces kept %d/%d", aw, a, hk, h)
}

// printFleet writes what the fleet's tail sampling kept, per scenario and
// service.
func printFleet(out io.Writer, results []scenarioResult) {
	fmt.Fprintln(out, "\nFLEET — what the collector tier's tail sampling kept of the traces each service sent (every service keeps")
	fmt.Fprintln(out, "every trace at the head; the collector keeps a trace whole when a span of it, of any service, says")
	fmt.Fprintln(out, "telltale.anomaly=true, and 10% of the others, also whole):")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tservice\tanomalous traces sent\tkept whole\thealthy traces sent\tkept\tkept whole\t")
	for _, sc := range results {
		for i, c := range sc.Fleet {
			name := sc.Name
			if i > 0 {
				name = ""
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%d\t\n", name, c.Service, c.AnomalousSent, c.AnomalousWhole, c.HealthySent, share(c.HealthyKept, c.HealthySent), c.HealthyWhole)
		}
	}
	_ = tw.Flush()
	fmt.Fprintln(out, "\n(a service's traces are those it exported spans of during the scenario, for the scenario's requests; a trace")
	fmt.Fprintln(out, " is anomalous for every service in it when any of its spans is: the upstreams' healthy answers to an")
	fmt.Fprintln(out, " anomalous gateway request are kept with it. \"kept whole\": Jaeger holds every span the service sent of it.)")
}

// share writes n of total as a count and a percentage.
func share(n, total int) string {
	if total == 0 {
		return "-"
	}
	return fmt.Sprintf("%d (%.0f%%)", n, 100*float64(n)/float64(total))
}
