package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// fakeJaeger answers /api/traces/{id} for the ids it holds, as Jaeger's
// query API does, and 404 for the others.
type fakeJaeger struct {
	mu      sync.Mutex
	traces  map[string]string // id → service
	lookups atomic.Int64
}

func (f *fakeJaeger) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.lookups.Add(1)
	id, ok := strings.CutPrefix(r.URL.Path, "/api/traces/")
	f.mu.Lock()
	service, held := f.traces[id]
	f.mu.Unlock()
	if !ok || !held {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"data":null,"errors":[{"code":404,"msg":"trace not found"}]}`))
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"data": []any{map[string]any{
		"traceID":   id,
		"spans":     []any{map[string]any{"traceID": id, "spanID": "01", "processID": "p1"}},
		"processes": map[string]any{"p1": map[string]any{"serviceName": service}},
	}}})
}

func TestCheckJaegerCountsWhatJaegerHolds(t *testing.T) {
	fj := &fakeJaeger{traces: map[string]string{
		"a1": "gateway-guarded", "a2": "gateway-guarded", "h1": "gateway-guarded",
		"n1": "gateway-naive",
		"x1": "gateway-other", // another service's trace of the same id does not count
	}}
	srv := httptest.NewServer(fj)
	defer srv.Close()
	jc := newJaegerClient(srv.URL)
	defer jc.HTTP.CloseIdleConnections()

	res := scenarioResult{Gateways: []gatewayResult{
		{Gateway: modeGuarded, Service: "gateway-guarded", TraceIDs: []string{"a1", "a2", "a3", "h1", "h2"}, Anomalous: 4, AnomalousTraceIDs: []string{"a1", "a2", "a3"}},
		{Gateway: modeNaive, Service: "gateway-naive", TraceIDs: []string{"n1", "n2", "x1"}, Anomalous: 2, AnomalousTraceIDs: []string{"n2", "x1"}},
	}}
	if err := checkJaeger(context.Background(), jc, &res, checkOptions{ingest: jaegerIngest}); err != nil {
		t.Fatal(err)
	}
	g, n := res.Gateways[0].Jaeger, res.Gateways[1].Jaeger
	if g.Looked != 5 || g.Found != 3 || g.AnomalousLooked != 3 || g.AnomalousFound != 2 || (g.Example != "a1" && g.Example != "a2") {
		t.Errorf("guarded: %+v, want 3 of 5 found, 2 of 3 anomalous, an anomalous example", *g)
	}
	if n.Looked != 3 || n.Found != 1 || n.AnomalousFound != 0 || n.Example != "n1" {
		t.Errorf("naive: %+v, want 1 of 3 found (n1), no anomalous one", *n)
	}
	// Two rounds: the second finds nothing new, and the lookups stop.
	if got := fj.lookups.Load(); got != 8+4 {
		t.Errorf("%d lookups, want 12 (8, then the 4 not found once more)", got)
	}
}

func TestCheckJaegerFailsWithoutJaeger(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close()
	jc := newJaegerClient(addr)
	res := scenarioResult{Gateways: []gatewayResult{{Gateway: modeGuarded, Service: "gateway-guarded", TraceIDs: []string{"a1"}}}}
	if err := checkJaeger(context.Background(), jc, &res, checkOptions{ingest: jaegerIngest}); err == nil {
		t.Error("no error with nothing listening")
	}
}
