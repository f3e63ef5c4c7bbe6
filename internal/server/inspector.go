package server

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/telltale-go/telltale/transport"
)

// InspectorConfig configures [Inspector].
type InspectorConfig struct {
	// Transports are the telltale transports whose bodies and leaks are
	// shown, in this order.
	Transports []*transport.Transport

	// Goroutines, if set, is the monitor whose orphaned goroutines are
	// shown. Viewing the page asks it for a check, which it runs only if
	// the last one is older than its Interval.
	Goroutines *GoroutineMonitor

	// MaxItems caps each list (open bodies, recent leaks, orphans) per
	// transport. Zero means 100.
	MaxItems int

	// TraceURL, if set, makes every trace id on the page a link into your
	// trace UI: a URL in which {trace_id} stands for the id, such as
	// "http://127.0.0.1:16686/trace/{trace_id}" for Jaeger.
	TraceURL string
}

// traceIDPlaceholder is where the trace id goes in InspectorConfig.TraceURL.
const traceIDPlaceholder = "{trace_id}"

// Inspection is what [Inspector] shows, and its JSON form.
type Inspection struct {
	// At is when the inspection was made.
	At time.Time `json:"at"`
	// Transports describes each configured transport, in order.
	Transports []TransportInspection `json:"transports"`
	// Goroutines is the goroutine monitor's view; nil without a monitor.
	Goroutines *GoroutineInspection `json:"goroutines,omitempty"`

	traceURL string
}

// TraceLink returns the link to the trace id in the configured trace UI, or
// "" when none is configured.
func (in Inspection) TraceLink(traceID string) string {
	if in.traceURL == "" || traceID == "" {
		return ""
	}
	return strings.ReplaceAll(in.traceURL, traceIDPlaceholder, traceID)
}

// TransportInspection is one transport's part of an [Inspection].
type TransportInspection struct {
	// Index is the transport's position in InspectorConfig.Transports.
	Index int `json:"index"`
	// Name is the name given with transport.WithName, if any.
	Name string `json:"name,omitempty"`
	// Stats are the transport's counters.
	Stats transport.Stats `json:"stats"`
	// OpenBodies are the bodies still open, oldest first.
	OpenBodies []transport.BodyInfo `json:"open_bodies"`
	// RecentLeaks are the last leaks, newest first.
	RecentLeaks []transport.Leak `json:"recent_leaks"`
}

// GoroutineInspection is the goroutine monitor's part of an [Inspection].
type GoroutineInspection struct {
	// LastCheck is when the monitor last looked.
	LastCheck time.Time `json:"last_check"`
	// Orphans are the goroutines found still running after their request.
	Orphans []OrphanedGoroutine `json:"orphans"`
}

// Handler validates the config and returns the inspector: a read-only
// handler that shows what telltale sees now — for each transport its
// counters, its open bodies and its recent leaks, and the monitor's
// orphaned goroutines — as JSON when asked (Accept: application/json, or
// ?format=json) and as a small HTML page otherwise.
func (cfg InspectorConfig) Handler() (http.Handler, error) {
	if cfg.MaxItems <= 0 {
		cfg.MaxItems = 100
	}
	if cfg.TraceURL != "" {
		u, err := url.Parse(strings.ReplaceAll(cfg.TraceURL, traceIDPlaceholder, "0"))
		if err != nil || !strings.Contains(cfg.TraceURL, traceIDPlaceholder) || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("Inspector: TraceURL %q: want an http(s) URL with %s where the trace id goes", cfg.TraceURL, traceIDPlaceholder)
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in := cfg.inspect()
		if wantsJSON(r) {
			w.Header().Set("Content-Type", "application/json; charset=UTF-8")
			_ = json.NewEncoder(w).Encode(in)
			return
		}
		var buf bytes.Buffer
		if err := inspectorPage.Execute(&buf, in); err != nil {
			http.Error(w, "inspector page: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=UTF-8")
		_, _ = w.Write(buf.Bytes())
	}), nil
}

func (cfg InspectorConfig) inspect() Inspection {
	in := Inspection{At: time.Now(), Transports: make([]TransportInspection, 0, len(cfg.Transports)), traceURL: cfg.TraceURL}
	for i, tr := range cfg.Transports {
		if tr == nil {
			continue
		}
		open := tr.OpenBodies(cfg.MaxItems)
		leaks := tr.RecentLeaks()
		for l, r := 0, len(leaks)-1; l < r; l, r = l+1, r-1 {
			leaks[l], leaks[r] = leaks[r], leaks[l]
		}
		in.Transports = append(in.Transports, TransportInspection{
			Index:       i,
			Name:        tr.Name(),
			Stats:       tr.Stats(),
			OpenBodies:  capped(open, cfg.MaxItems),
			RecentLeaks: capped(leaks, cfg.MaxItems),
		})
	}
	if m := cfg.Goroutines; m != nil {
		orphans := m.Check()
		in.Goroutines = &GoroutineInspection{LastCheck: m.LastCheck(), Orphans: capped(orphans, cfg.MaxItems)}
		if in.Goroutines.Orphans == nil {
			in.Goroutines.Orphans = []OrphanedGoroutine{}
		}
	}
	return in
}

func capped[T any](s []T, n int) []T {
	if s == nil {
		return []T{}
	}
	return s[:min(len(s), n)]
}

func wantsJSON(r *http.Request) bool {
	if r.URL.Query().Get("format") == "json" {
		return true
	}
	accept := r.Header.Get("Accept")
	return strings.Contains(accept, "application/json") && !strings.Contains(accept, "text/html")
}

//go:embed inspector.html
var inspectorHTML string

var inspectorPage = template.Must(template.New("inspector").Funcs(template.FuncMap{
	"age": func(d time.Duration) string {
		if d >= time.Second {
			return d.Round(time.Millisecond).String()
		}
		return d.Round(time.Microsecond).String()
	},
	"since": func(t time.Time) string {
		if t.IsZero() {
			return "unknown"
		}
		return time.Since(t).Round(time.Millisecond).String() + " ago"
	},
	"clock": func(t time.Time) string { return t.Format("15:04:05.000") },
}).Parse(inspectorHTML))
