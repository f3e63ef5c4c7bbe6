package nethttp_test

import (
	"context"
	"encoding/json"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/telltale-go/telltale/middleware/nethttp"
	"github.com/telltale-go/telltale/transport"
)

// The inspector, mounted next to the application, shows a transport's
// open body (with its call site), its repaired leak, and the orphaned
// goroutine of a request (with its route) as JSON, without secrets.
func TestInspectorJSON(t *testing.T) {
	v := newEnv(t, transport.WithName("articles"))
	upstream := payloadServer(t, 4<<10)
	mon := nethttp.NewGoroutineMonitor(nethttp.GoroutineMonitorConfig{TracerProvider: v.tp, Grace: time.Second})
	clock := newFakeClock(mon)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	v.mux.HandleFunc("GET /leaky", func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, upstream.URL+"/api?key=hunter2", nil)
		req.Header.Set("Authorization", "Bearer hunter2")
		if _, err := v.client.Do(req); err != nil { // forgot Close
			http.Error(w, err.Error(), http.StatusBadGateway)
		}
	})
	v.mux.HandleFunc("GET /spawn", func(w http.ResponseWriter, r *http.Request) {
		go func() { <-release }()
	})
	app := v.trace()(nethttp.LeaksWithConfig(nethttp.LeaksConfig{Goroutines: mon})(v.mux))
	root := http.NewServeMux()
	root.Handle("GET /debug/telltale", nethttp.Inspector(nethttp.InspectorConfig{Transports: []*transport.Transport{v.tr}, Goroutines: mon}))
	root.Handle("/", app)
	v.start(t, root)

	v.do(t, http.MethodGet, "/leaky", nil)
	v.do(t, http.MethodGet, "/spawn", nil)
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, upstream.URL+"/held?session=hunter2", nil)
	_, openFile, openLine, _ := runtime.Caller(0)
	resp, err := v.client.Do(req) // held open outside any request: openLine+1
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	clock.Advance(2 * time.Second) // past the monitor's Grace

	got := v.do(t, http.MethodGet, "/debug/telltale", http.Header{"Accept": {"application/json"}})
	if got.code != http.StatusOK {
		t.Fatalf("status %d", got.code)
	}
	var in nethttp.Inspection
	if err := json.Unmarshal([]byte(got.body), &in); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, got.body)
	}
	if len(in.Transports) != 1 {
		t.Fatalf("%d transports", len(in.Transports))
	}
	tr := in.Transports[0]
	if tr.Name != "articles" || tr.Stats.Open != 1 || tr.Stats.Leaked != 1 || len(tr.OpenBodies) != 1 || len(tr.RecentLeaks) != 1 {
		t.Fatalf("transport %+v", tr)
	}
	if site := tr.OpenBodies[0].CallSite; site.File != openFile || site.Line != openLine+1 {
		t.Errorf("open body opened at %s, want %s:%d", site, openFile, openLine+1)
	}
	if l := tr.RecentLeaks[0]; !l.Repaired || l.Reason != transport.LeakOutOfScope || l.TraceID == "" {
		t.Errorf("leak %+v", l)
	}
	if in.Goroutines == nil || len(in.Goroutines.Orphans) != 1 || in.Goroutines.Orphans[0].Route != "GET /spawn" {
		t.Errorf("goroutines %+v", in.Goroutines)
	}
	if strings.Contains(got.body, "hunter2") {
		t.Errorf("the inspection shows a secret:\n%s", got.body)
	}
}

func TestInspectorConfigValidation(t *testing.T) {
	for _, bad := range []string{"http://jaeger.example/trace/", "javascript:alert(1)/{trace_id}", "://{trace_id}"} {
		if _, err := (nethttp.InspectorConfig{TraceURL: bad}).ToHandler(); err == nil || !strings.HasPrefix(err.Error(), "nethttp: Inspector: ") {
			t.Errorf("TraceURL %q: err = %v", bad, err)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("Inspector did not panic on an invalid config")
		}
	}()
	nethttp.Inspector(nethttp.InspectorConfig{TraceURL: "ftp://x/{trace_id}"})
}
