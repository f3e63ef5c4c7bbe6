package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

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

// The Echo majors the guarded gateway runs on ([Config.Echo]); the
// handlers are the same.
const (
	// EchoV5 serves it with Echo v5 and telltale's middleware/echov5: the
	// default.
	EchoV5 = "v5"
	// EchoV4 serves it with Echo v4 and telltale's middleware.
	EchoV4 = "v4"
)

// EchoMajors lists the values of [Config.Echo], the default first.
var EchoMajors = []string{EchoV5, EchoV4}

// NewGuarded returns the guarded gateway as an http.Handler, on the Echo
// major of [Config.Echo], and a function that stops its goroutine monitor
// and its transports.
func NewGuarded(cfg Config, logger *slog.Logger) (http.Handler, func() error) {
	// One hardened base, so one connection pool, for every upstream; one
	// telltale transport per upstream, named after it, so that its client
	// spans read "GET ads", carry peer.service=ads, and the inspector and
	// the leak warnings tell the upstreams apart.
	base := transport.NewHardenedTransport()
	g := &guarded{ups: cfg.Upstreams}
	for _, up := range cfg.Upstreams {
		tr := transport.New(base,
			transport.WithName(up.Name),
			transport.WithTracerProvider(cfg.TracerProvider),
			transport.WithLogger(logger),
			transport.WithSlowThreshold(SlowTTFB, SlowTotal),
			// The upstreams run telltale too: each call tells its upstream
			// how long the gateway will wait (Connect-Timeout-Ms), and the
			// upstream stops when the gateway does.
			transport.WithDeadlinePropagation(),
			// A backstop for calls made outside any request; calls made
			// for a request already carry its deadline.
			transport.WithTimeout(2*time.Second),
			// Bodies leaked outside a request scope are still found.
			transport.WithMaxBodyAge(10*time.Second),
		)
		g.transports = append(g.transports, tr)
		g.clients = append(g.clients, tr.Client())
	}

	var app guardedApp
	switch cfg.Echo {
	case EchoV4:
		app = serveEchoV4(g, cfg)
	default:
		app = serveEchoV5(g, cfg)
	}
	stats := func() any {
		st := guardedStats{Echo: app.echo, Transports: map[string]transport.Stats{}, OrphanedGoroutines: app.orphans()}
		for _, tr := range g.transports {
			st.Transports[tr.Name()] = tr.Stats()
		}
		return st
	}
	closeFn := func() error {
		app.stop()
		var errs []error
		for _, tr := range g.transports {
			errs = append(errs, tr.Close())
		}
		return errors.Join(errs...)
	}
	return withDebug(app.handler, statsHandler(cfg, stats)), closeFn
}

// guardedApp is the guarded gateway served by one Echo major: the part
// that differs between [EchoV4] and [EchoV5], the framework's glue.
type guardedApp struct {
	echo    string
	handler http.Handler
	// orphans counts the goroutines the monitor found orphaned; stop stops
	// the monitor.
	orphans func() int
	stop    func()
}

// guardedStats is the guarded gateway's part of [Stats].
type guardedStats struct {
	Echo               string                     `json:"echo"`
	Transports         map[string]transport.Stats `json:"transports"`
	OrphanedGoroutines int                        `json:"orphaned_goroutines"`
}

// guarded holds the guarded gateway's handlers, whatever serves them.
type guarded struct {
	ups []Upstream
	// transports and clients are those of each upstream, in order.
	transports []*transport.Transport
	clients    []*http.Client
}

// failure is a handler's error: the status and the message the client
// gets, and the cause, which goes on the span. Each Echo adapter turns it
// into its framework's *echo.HTTPError.
type failure struct {
	status  int
	message string
	err     error
}

func (f *failure) Error() string { return fmt.Sprintf("gateway: %s: %v", f.message, f.err) }
func (f *failure) Unwrap() error { return f.err }

// feed calls every upstream at once under the request's deadline. A
// required upstream failing cancels the others and fails the request; an
// optional one failing is left out of a partial answer, which the handler
// reports with report (its Echo adapter's ReportAnomaly) and whose
// missing upstreams it lists in missing.
func (g *guarded) feed(ctx context.Context, report func(ctx context.Context, why string)) (feed Feed, missing string, err error) {
	reqCtx := ctx
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
			items[i], errs[i] = fetch(ctx, g.clients[i], itemsURL(up))
			if errs[i] != nil && !up.Optional {
				return fmt.Errorf("gateway: required upstream %s: %w", up.Name, errs[i])
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return Feed{}, "", &failure{http.StatusBadGateway, "required upstream failed", err}
	}
	feed = Feed{Parts: make(map[string][]upstream.Item, len(g.ups))}
	for i, up := range g.ups {
		if errs[i] != nil {
			feed.Missing = append(feed.Missing, up.Name)
			continue
		}
		feed.Parts[up.Name] = items[i]
	}
	if len(feed.Missing) > 0 {
		missing = strings.Join(feed.Missing, ",")
		// A partial answer is a degraded one: its trace reaches Jaeger
		// even when the head sampler dropped it, like telltale's own
		// findings.
		report(reqCtx, "partial feed, missing "+missing)
	}
	return feed, missing, nil
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
func (g *guarded) count(ctx context.Context) (Count, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, itemsURL(g.ups[0]), nil)
	if err != nil {
		return Count{}, &failure{http.StatusInternalServerError, "bad request to articles", err}
	}
	resp, err := g.clients[0].Do(req) // LEAK: the body is never closed.
	if err != nil {
		return Count{}, &failure{http.StatusBadGateway, "articles failed", err}
	}
	return Count{Articles: resp.Header.Get(upstream.TotalCountHeader)}, nil
}
