package echov5_test

import (
	"encoding/json"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v5"

	ttmw "github.com/telltale-go/telltale/middleware/echov5"
	"github.com/telltale-go/telltale/transport"
)

// evilRoute is a route template with markup in it: the page must show it as
// text.
const evilRoute = "/evil/<b>bold</b>"

// inspectorEnv serves the inspector over a transport with one open body, one
// repaired leak and one orphaned goroutine (on evilRoute), and returns the
// call site of the open body.
func inspectorEnv(t *testing.T) (v *env, openFile string, openLine int) {
	t.Helper()
	v = newEnv(t, transport.WithName("articles"))
	upstream, _ := countingUpstream(t, 4<<10)
	mon := ttmw.NewGoroutineMonitor(ttmw.GoroutineMonitorConfig{TracerProvider: v.tp, Interval: time.Millisecond, Grace: time.Millisecond})
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })

	app := v.e.Group("", ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp}), ttmw.LeaksWithConfig(ttmw.LeaksConfig{Goroutines: mon}))
	app.GET("/leaky", func(c *echo.Context) error {
		req, err := http.NewRequestWithContext(c.Request().Context(), http.MethodGet, upstream.URL+"/api?key=hunter2", nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer hunter2")
		resp, err := v.client.Do(req)
		if err != nil {
			return err
		}
		_ = resp // forgot Close
		return c.NoContent(http.StatusOK)
	})
	app.GET(evilRoute, func(c *echo.Context) error {
		go func() { <-release }()
		return c.NoContent(http.StatusOK)
	})
	v.e.GET("/debug/telltale", ttmw.Inspector(ttmw.InspectorConfig{Transports: []*transport.Transport{v.tr}, Goroutines: mon,
		TraceURL: "http://jaeger.example/trace/{trace_id}"}))
	v.start(t)

	if code, _ := v.do(t, http.MethodGet, "/leaky", nil); code != http.StatusOK {
		t.Fatalf("GET /leaky = %d", code)
	}
	if code, _ := v.do(t, http.MethodGet, "/evil/%3Cb%3Ebold%3C/b%3E", nil); code != http.StatusOK {
		t.Fatalf("GET %s = %d", evilRoute, code)
	}

	// A body held open outside any request: it shows as open.
	_, openFile, openLine, _ = runtime.Caller(0)
	resp, err := v.client.Get(upstream.URL + "/held?session=hunter2") // openLine+1
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	eventually(t, "the orphan", func() bool { return len(mon.Check()) == 1 })
	return v, openFile, openLine + 1
}

func TestInspectorJSON(t *testing.T) {
	v, openFile, openLine := inspectorEnv(t)
	for _, ask := range []struct {
		path   string
		header http.Header
	}{
		{"/debug/telltale?format=json", nil},
		{"/debug/telltale", http.Header{"Accept": {"application/json"}}},
	} {
		code, body := v.do(t, http.MethodGet, ask.path, ask.header)
		if code != http.StatusOK {
			t.Fatalf("%s: %d", ask.path, code)
		}
		var in ttmw.Inspection
		if err := json.Unmarshal([]byte(body), &in); err != nil {
			t.Fatalf("%s: not JSON: %v\n%s", ask.path, err, body)
		}
		if len(in.Transports) != 1 {
			t.Fatalf("%d transports", len(in.Transports))
		}
		tr := in.Transports[0]
		if tr.Name != "articles" || tr.Stats.Open != 1 || tr.Stats.Leaked != 1 || len(tr.OpenBodies) != 1 || len(tr.RecentLeaks) != 1 {
			t.Fatalf("transport %+v", tr)
		}
		if site := tr.OpenBodies[0].CallSite; site.File != openFile || site.Line != openLine {
			t.Errorf("open body opened at %s, want %s:%d", site, openFile, openLine)
		}
		if l := tr.RecentLeaks[0]; !l.Repaired || l.Reason != transport.LeakOutOfScope || l.TraceID == "" {
			t.Errorf("leak %+v", l)
		}
		if in.Goroutines == nil || len(in.Goroutines.Orphans) != 1 || in.Goroutines.Orphans[0].Route != evilRoute {
			t.Errorf("goroutines %+v", in.Goroutines)
		}
		if strings.Contains(body, "hunter2") {
			t.Errorf("the inspection shows a secret:\n%s", body)
		}
	}
}

// The page is HTML, with the route's markup as text, every trace id a link
// into the trace UI, and no secret.
func TestInspectorHTML(t *testing.T) {
	v, _, _ := inspectorEnv(t)
	_, body := v.do(t, http.MethodGet, "/debug/telltale?format=json", nil)
	var in ttmw.Inspection
	if err := json.Unmarshal([]byte(body), &in); err != nil {
		t.Fatal(err)
	}
	id := in.Transports[0].RecentLeaks[0].TraceID
	code, page := v.do(t, http.MethodGet, "/debug/telltale", nil)
	if code != http.StatusOK || !strings.Contains(page, "<title>telltale inspector</title>") {
		t.Fatalf("%d\n%s", code, page)
	}
	if strings.Contains(page, "<b>bold</b>") || !strings.Contains(page, "/evil/&lt;b&gt;bold&lt;/b&gt;") {
		t.Error("the route is not escaped")
	}
	if want := `<a class="trace" href="http://jaeger.example/trace/` + id + `"><code>` + id + `</code></a>`; !strings.Contains(page, want) {
		t.Errorf("no link %s in the page", want)
	}
	if strings.Contains(page, "hunter2") {
		t.Error("the page shows a secret")
	}
}

func TestInspectorConfigValidation(t *testing.T) {
	for _, bad := range []string{"http://jaeger.example/trace/", "javascript:alert(1)/{trace_id}", "://{trace_id}"} {
		if _, err := (ttmw.InspectorConfig{TraceURL: bad}).ToHandler(); err == nil || !strings.HasPrefix(err.Error(), "echov5: Inspector: ") {
			t.Errorf("TraceURL %q: err = %v", bad, err)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("Inspector did not panic on an invalid config")
		}
	}()
	ttmw.Inspector(ttmw.InspectorConfig{TraceURL: "ftp://x/{trace_id}"})
}
