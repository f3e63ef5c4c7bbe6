package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/sync/errgroup"

	ttmw "github.com/telltale-go/telltale/middleware"
	"github.com/telltale-go/telltale/transport"

	"github.com/telltale-go/telltale/demo/internal/upstream"
)

// GuardedDeadline is the guarded gateway's per-request deadline: the time
// budget every outbound call of a request shares.
const GuardedDeadline = time.Second

// Slow thresholds of the guarded gateway's client: an upstream whose headers
// take longer than SlowTTFB, or whose whole exchange takes longer than
// SlowTotal, is reported as slow on its span.
const (
	SlowTTFB  = 250 * time.Millisecond
	SlowTotal = 800 * time.Millisecond
)

// InspectorPath serves telltale's inspector (open bodies, recent leaks).
const InspectorPath = "/debug/telltale"

// NewGuarded returns the guarded gateway as an http.Handler, and a function
// that stops its transport's goroutines.
func NewGuarded(cfg Config, logger *slog.Logger) (http.Handler, func() error) {
	tr := transport.New(nil,
		transport.WithTracerProvider(cfg.TracerProvider),
		transport.WithLogger(logger),
		transport.WithSlowThreshold(SlowTTFB, SlowTotal),
		// A backstop for calls made outside any request; calls made for a
		// request already carry its deadline.
		transport.WithTimeout(2*time.Second),
		// Bodies leaked outside a request scope are still found.
		transport.WithMaxBodyAge(10*time.Second),
	)
	g := &guarded{ups: cfg.Upstreams, client: &http.Client{Transport: tr}}
	// Finds goroutines that outlive their request (the incident's fourth
	// bug) and reports them in that request's trace.
	monitor := ttmw.NewGoroutineMonitor(ttmw.GoroutineMonitorConfig{TracerProvider: cfg.TracerProvider, Interval: time.Second})
	monitor.Start()

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.Use(ttmw.TraceWithConfig(ttmw.TraceConfig{TracerProvider: cfg.TracerProvider}))
	e.Use(traceIDHeader)
	e.Use(ttmw.Deadline(GuardedDeadline))
	e.Use(ttmw.LeaksWithConfig(ttmw.LeaksConfig{Goroutines: monitor}))
	e.GET(FeedPath, g.feed)
	e.GET(CountPath, g.count)
	e.GET(InspectorPath, ttmw.Inspector(ttmw.InspectorConfig{Transports: []*transport.Transport{tr}, Goroutines: monitor, TraceURL: cfg.TraceURL}))

	stats := func() any {
		return guardedStats{Transport: tr.Stats(), OrphanedGoroutines: len(monitor.Orphans())}
	}
	closeFn := func() error {
		monitor.Stop()
		return tr.Close()
	}
	return withDebug(e, statsHandler(cfg, stats)), closeFn
}

// guardedStats is the guarded gateway's part of [Stats].
type guardedStats struct {
	Transport          transport.Stats `json:"transport"`
	OrphanedGoroutines int             `json:"orphaned_goroutines"`
}

type guarded struct {
	ups    []Upstream
	client *http.Client
}

// feed calls every upstream at once under the request's deadline. A
// required upstream failing cancels the others and fails the request; an
// optional one failing is left out of a partial answer.
func (g *guarded) feed(c echo.Context) error {
	ctx := c.Request().Context()
	if d, ok := ctx.Deadline(); ok {
		// Stop waiting for upstreams a little before the request's own
		// deadline, to still answer with what arrived.
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-answerMargin))
		defer cancel()
	}
	eg, ctx := errgroup.WithContext(ctx)
	items := make([][]upstream.Item, len(g.ups))
	errs := make([]error, len(g.ups))
	for i, up := range g.ups {
		eg.Go(func() error {
			items[i], errs[i] = fetch(ctx, g.client, itemsURL(up))
			if errs[i] != nil && !up.Optional {
				return fmt.Errorf("gateway: required upstream %s: %w", up.Name, errs[i])
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return echo.NewHTTPError(http.StatusBadGateway, "required upstream failed").WithInternal(err)
	}
	feed := Feed{Parts: make(map[string][]upstream.Item, len(g.ups))}
	for i, up := range g.ups {
		if errs[i] != nil {
			feed.Missing = append(feed.Missing, up.Name)
			continue
		}
		feed.Parts[up.Name] = items[i]
	}
	if len(feed.Missing) > 0 {
		missing := strings.Join(feed.Missing, ",")
		c.Response().Header().Set(MissingHeader, missing)
		// A partial answer is a degraded one: its trace reaches Jaeger
		// even when the head sampler dropped it, like telltale's own
		// findings.
		ttmw.ReportAnomaly(c.Request().Context(), "partial feed, missing "+missing)
	}
	return c.JSON(http.StatusOK, feed)
}

// fetch gets one upstream's document: the request carries ctx, the body is
// bounded and closed on every path. Closing it is enough for the connection
// to go back to the pool: telltale's transport drains what is left on
// Close (up to 256 KiB, for at most 100 ms) and closes the connection
// beyond that.
func fetch(ctx context.Context, client *http.Client, url string) ([]upstream.Item, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("gateway: %s: %s", url, resp.Status)
	}
	var doc upstream.Document
	if err := json.NewDecoder(&limitedReader{r: resp.Body, n: MaxBody}).Decode(&doc); err != nil {
		return nil, fmt.Errorf("gateway: decode %s: %w", url, err)
	}
	return doc.Items, nil
}

// count reads one header of the articles upstream. It keeps the bug on
// purpose, so the demo has a leak for telltale to report.
func (g *guarded) count(c echo.Context) error {
	req, err := http.NewRequestWithContext(c.Request().Context(), http.MethodGet, itemsURL(g.ups[0]), nil)
	if err != nil {
		return echo.NewHTTPError(http.StatusInternalServerError).WithInternal(err)
	}
	resp, err := g.client.Do(req) // LEAK: the body is never closed.
	if err != nil {
		return echo.NewHTTPError(http.StatusBadGateway, "articles failed").WithInternal(err)
	}
	return c.JSON(http.StatusOK, Count{Articles: resp.Header.Get(upstream.TotalCountHeader)})
}
