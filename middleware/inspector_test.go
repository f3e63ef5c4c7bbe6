package middleware_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	ttmw "github.com/telltale-go/telltale/middleware"
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
	mon := ttmw.NewGoroutineMonitor(ttmw.GoroutineMonitorConfig{TracerProvider: v.tp, Grace: time.Second})
	clock := newFakeClock(mon)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })

	app := v.e.Group("", ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: v.tp}), ttmw.LeaksWithConfig(ttmw.LeaksConfig{Goroutines: mon}))
	app.GET("/leaky", func(c echo.Context) error {
		req, _ := http.NewRequestWithContext(c.Request().Context(), http.MethodGet, upstream.URL+"/api?key=hunter2", nil)
		req.Header.Set("Authorization", "Bearer hunter2")
		resp, err := v.client.Do(req)
		if err != nil {
			return err
		}
		_ = resp // forgot Close
		return c.NoContent(http.StatusOK)
	})
	app.GET(evilRoute, func(c echo.Context) error {
		go func() { <-release }()
		return c.NoContent(http.StatusOK)
	})
	v.e.GET("/debug/telltale", ttmw.Inspector(ttmw.InspectorConfig{Transports: []*transport.Transport{v.tr}, Goroutines: mon,
		TraceURL: "http://jaeger.example/trace/{trace_id}"}))
	v.start(t)

	v.do(t, http.MethodGet, "/leaky", nil)
	v.do(t, http.MethodGet, "/evil/%3Cb%3Ebold%3C/b%3E", nil)

	// A body held open outside any request: it shows as open.
	_, openFile, openLine, _ = runtime.Caller(0)
	resp, err := v.client.Get(upstream.URL + "/held?session=hunter2") // openLine+1
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	clock.Advance(2 * time.Second) // past the monitor's Grace
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

// With a trace URL template, every trace id on the page links to its trace.
func TestInspectorLinksTraces(t *testing.T) {
	v, _, _ := inspectorEnv(t)
	_, body := v.do(t, http.MethodGet, "/debug/telltale?format=json", nil)
	var in ttmw.Inspection
	if err := json.Unmarshal([]byte(body), &in); err != nil {
		t.Fatal(err)
	}
	id := in.Transports[0].RecentLeaks[0].TraceID
	_, page := v.do(t, http.MethodGet, "/debug/telltale", nil)
	if want := `<a class="trace" href="http://jaeger.example/trace/` + id + `"><code>` + id + `</code></a>`; !strings.Contains(page, want) {
		t.Errorf("no link %s in the page", want)
	}
	for _, bad := range []string{"http://jaeger.example/trace/", "javascript:alert(1)/{trace_id}", "://{trace_id}"} {
		if _, err := (ttmw.InspectorConfig{TraceURL: bad}).ToHandler(); err == nil || !strings.HasPrefix(err.Error(), "middleware: Inspector: ") {
			t.Errorf("TraceURL %q: err = %v", bad, err)
		}
	}
}

func TestInspectorHTMLEscapes(t *testing.T) {
	v, _, _ := inspectorEnv(t)
	code, page := v.do(t, http.MethodGet, "/debug/telltale", nil)
	if code != http.StatusOK || !strings.Contains(page, "<title>telltale inspector</title>") {
		t.Fatalf("%d\n%s", code, page)
	}
	if strings.Contains(page, "<b>bold</b>") || !strings.Contains(page, "/evil/&lt;b&gt;bold&lt;/b&gt;") {
		t.Error("the route is not escaped")
	}
	if strings.Contains(page, "hunter2") {
		t.Error("the page shows a secret")
	}
}

// chromium is the browser of Debian's chromium package, as CI installs it.
const chromium = "/usr/bin/chromium"

// The page, rendered by a real headless Chromium: the DOM it builds has the
// tables, the counts, the call site, and the markup of the route as text.
// With TELLTALE_SCREENSHOT=1 it also writes testdata/inspector.png.
func TestInspectorInChromium(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("%s not found (apt-get install chromium): the inspector page is not checked in a browser", chromium)
	}
	v, openFile, openLine := inspectorEnv(t)
	url := v.srv.URL + "/debug/telltale"

	dom := runChromium(t, "--dump-dom", url)
	for _, want := range []string{
		`<h1>telltale inspector</h1>`,
		`<h2>Transport articles</h2>`,
		`<b id="open-0">1</b>`,
		`<b id="leaked-0" class="bad">1</b>`,
		`<tr class="open-body">`,
		`<tr class="leak">`,
		`<tr class="orphan">`,
		`<code class="route">/evil/&lt;b&gt;bold&lt;/b&gt;</code>`,
		filepath.Base(openFile) + ":" + itoa(openLine),
		"out_of_scope",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered DOM lacks %q", want)
		}
	}
	if strings.Contains(dom, "<b>bold</b>") {
		t.Error("the route's markup was rendered as markup")
	}
	if strings.Contains(dom, "hunter2") {
		t.Error("the rendered page shows a secret")
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}

	if os.Getenv("TELLTALE_SCREENSHOT") == "1" {
		png, err := filepath.Abs(filepath.Join("testdata", "inspector.png"))
		if err != nil {
			t.Fatal(err)
		}
		runChromium(t, "--screenshot="+png, "--window-size=1200,800", url)
		if st, err := os.Stat(png); err != nil || st.Size() == 0 {
			t.Fatalf("no screenshot: %v", err)
		}
		t.Logf("wrote %s", png)
	}
}

func runChromium(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(),
	}
	cmd := exec.CommandContext(ctx, chromium, append(base, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
