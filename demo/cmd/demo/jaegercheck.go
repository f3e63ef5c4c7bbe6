package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/telltale-go/telltale/demo/internal/jaeger"
)

// jaegerCheck is what Jaeger holds of one gateway's requests in one
// scenario, looked up by the trace id each answer carried.
type jaegerCheck struct {
	// Looked counts the trace ids looked up, Found those Jaeger holds.
	Looked int `json:"looked"`
	Found  int `json:"found"`
	// AnomalousLooked counts the anomalous requests' trace ids looked up,
	// AnomalousFound those Jaeger holds.
	AnomalousLooked int `json:"anomalous_looked"`
	AnomalousFound  int `json:"anomalous_found"`
	// Example is the trace id of a trace Jaeger holds, an anomalous
	// request's if there is one; empty if none was found.
	Example string `json:"example,omitempty"`
	// Partial says the lookups stopped before every trace id was looked up
	// (time or count bound), and why.
	Partial string `json:"partial,omitempty"`
}

// Bounds of the Jaeger check, so that a slow or missing Jaeger cannot hang
// the demo.
const (
	// jaegerCheckTime bounds the lookups of one scenario, every gateway
	// together.
	jaegerCheckTime = 15 * time.Second
	// jaegerCheckMax bounds the trace ids looked up per gateway and
	// scenario: the anomalous requests' first, then the others.
	jaegerCheckMax = 1500
	// jaegerIngest is how long a trace takes to become queryable once the
	// exporter has sent it (Jaeger batches for 200ms before storing).
	jaegerIngest = 400 * time.Millisecond
	// jaegerRetry is the wait before looking up again the ids not found,
	// in case Jaeger stored them late; the lookups stop once a round finds
	// nothing new.
	jaegerRetry = time.Second
	// jaegerWorkers is how many lookups run at once.
	jaegerWorkers = 8
	// fleetIngest is jaegerIngest behind the fleet: the collector tier
	// holds a trace for its decision_wait (2s) from its first span before
	// it forwards it, and each tier batches for 200ms.
	fleetIngest = 3 * time.Second
)

// newJaegerClient returns a query client for base with room for the
// concurrent lookups.
func newJaegerClient(base string) *jaeger.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = jaegerWorkers
	return &jaeger.Client{Base: base, HTTP: &http.Client{Transport: tr, Timeout: 5 * time.Second}}
}

// checkOptions adapt [checkJaeger] to where the traces went.
type checkOptions struct {
	// ingest is the wait before the first lookups: [jaegerIngest], or
	// [fleetIngest] behind the fleet's tail sampling.
	ingest time.Duration
	// onTrace, if set, is given every trace looked up and found, whichever
	// services it holds (the same trace again if it is looked up again).
	onTrace func(id string, tr jaeger.Trace)
}

// checkScenario looks up the scenario's traces in Jaeger and, behind the
// fleet, accounts for what its tail sampling kept.
func checkScenario(ctx context.Context, jc *jaeger.Client, res *scenarioResult, fleet bool) error {
	if !fleet {
		return checkJaeger(ctx, jc, res, checkOptions{ingest: jaegerIngest})
	}
	found := map[string]jaeger.Trace{}
	var mu sync.Mutex
	err := checkJaeger(ctx, jc, res, checkOptions{ingest: fleetIngest, onTrace: func(id string, tr jaeger.Trace) {
		mu.Lock()
		found[id] = tr
		mu.Unlock()
	}})
	if err == nil {
		res.Fleet = accountFleet(res, found)
	}
	return err
}

// checkJaeger looks up in Jaeger the traces of every request of res, once
// the gateways have flushed them, and records what it found in each
// gateway's result. It returns an error only if Jaeger could not be
// queried at all.
func checkJaeger(ctx context.Context, jc *jaeger.Client, res *scenarioResult, opts checkOptions) error {
	ctx, cancel := context.WithTimeout(ctx, jaegerCheckTime+opts.ingest)
	defer cancel()

	type lookup struct {
		gw        int
		id        string
		anomalous bool
	}
	var pending []lookup
	for i := range res.Gateways {
		g := &res.Gateways[i]
		g.Jaeger = &jaegerCheck{}
		anomalous := make(map[string]bool, len(g.AnomalousTraceIDs))
		var ids []lookup
		for _, id := range g.AnomalousTraceIDs {
			anomalous[id] = true
			ids = append(ids, lookup{i, id, true})
		}
		for _, id := range g.TraceIDs {
			if !anomalous[id] {
				ids = append(ids, lookup{i, id, false})
			}
		}
		if len(ids) > jaegerCheckMax {
			g.Jaeger.Partial = fmt.Sprintf("looked up %d of %d trace ids, the anomalous requests' first", jaegerCheckMax, len(ids))
			ids = ids[:jaegerCheckMax]
		}
		for _, l := range ids {
			g.Jaeger.Looked++
			if l.anomalous {
				g.Jaeger.AnomalousLooked++
			}
		}
		pending = append(pending, ids...)
	}

	found := func(l lookup) {
		c := res.Gateways[l.gw].Jaeger
		c.Found++
		if l.anomalous {
			c.AnomalousFound++
		}
		if c.Example == "" || (l.anomalous && c.AnomalousFound == 1) {
			c.Example = l.id
		}
	}
	if !sleep(ctx, opts.ingest) {
		return ctx.Err()
	}
	service := func(gw int) string { return res.Gateways[gw].Service }
	for round := 0; len(pending) > 0; round++ {
		var mu sync.Mutex
		var missing []lookup
		var failed error
		newlyFound := 0
		work := make(chan lookup)
		var wg sync.WaitGroup
		for range jaegerWorkers {
			wg.Go(func() {
				for l := range work {
					tr, err := jc.Trace(ctx, l.id)
					if err == nil && opts.onTrace != nil {
						opts.onTrace(l.id, tr)
					}
					mu.Lock()
					switch {
					case err == nil && holds(tr, service(l.gw)):
						newlyFound++
						found(l)
					case err == nil || errors.Is(err, jaeger.ErrNotFound):
						missing = append(missing, l)
					default:
						missing = append(missing, l)
						if failed == nil {
							failed = err
						}
					}
					mu.Unlock()
				}
			})
		}
	feed:
		for _, l := range pending {
			select {
			case work <- l:
			case <-ctx.Done():
				break feed
			}
		}
		close(work)
		wg.Wait()
		if ctx.Err() != nil {
			stopped(res)
			return nil
		}
		if failed != nil && newlyFound == 0 {
			return failed
		}
		pending = missing
		if round > 0 && newlyFound == 0 {
			break
		}
		if len(pending) > 0 && !sleep(ctx, jaegerRetry) {
			stopped(res)
			return nil
		}
	}
	return nil
}

// stopped notes that the time bound cut the lookups short.
func stopped(res *scenarioResult) {
	for i := range res.Gateways {
		if c := res.Gateways[i].Jaeger; c.Partial == "" {
			c.Partial = fmt.Sprintf("stopped after %s", jaegerCheckTime)
		}
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

// sleep waits d, or less if ctx ends first; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
