package main

import (
	"testing"

	"github.com/telltale-go/telltale/demo/internal/jaeger"
	"github.com/telltale-go/telltale/demo/internal/telemetry"
)

// stored is a trace as Jaeger holds it: spans spans per service.
func stored(spans map[string]int) jaeger.Trace {
	tr := jaeger.Trace{Processes: map[string]jaeger.TraceProcess{}}
	for service, n := range spans {
		tr.Processes[service] = jaeger.TraceProcess{ServiceName: service}
		for range n {
			tr.Spans = append(tr.Spans, jaeger.Span{ProcessID: service})
		}
	}
	return tr
}

// A trace is anomalous for every service in it when one service flagged
// it; kept means some of a service's spans are stored, whole all of them;
// traces of other scenarios' requests are left out.
func TestAccountFleet(t *testing.T) {
	res := scenarioResult{Gateways: []gatewayResult{{
		Service:  "gateway-guarded",
		TraceIDs: []string{"a", "h1", "h2", "h3"},
		spans: map[string]map[string]telemetry.TraceSpans{
			"gateway-guarded": {"a": {Spans: 4}, "h1": {Spans: 4}, "h2": {Spans: 4}, "h3": {Spans: 4}, "old": {Spans: 1}},
			"ads":             {"a": {Spans: 1, Anomalous: true}, "h1": {Spans: 1}, "h2": {Spans: 1}, "h3": {Spans: 1}},
		},
	}}}
	found := map[string]jaeger.Trace{
		"a":  stored(map[string]int{"gateway-guarded": 4, "ads": 1}),
		"h1": stored(map[string]int{"gateway-guarded": 4, "ads": 1}),
		"h2": stored(map[string]int{"gateway-guarded": 3}), // partly stored: kept, not whole
	}
	got := accountFleet(&res, found)
	want := []fleetCount{
		{Service: "gateway-guarded", AnomalousSent: 1, AnomalousKept: 1, AnomalousWhole: 1, HealthySent: 3, HealthyKept: 2, HealthyWhole: 1},
		{Service: "ads", AnomalousSent: 1, AnomalousKept: 1, AnomalousWhole: 1, HealthySent: 3, HealthyKept: 1, HealthyWhole: 1},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("got %+v, want %+v", got[i], want[i])
		}
	}
}
