package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"

	"github.com/telltale-go/telltale/demo/internal/upstream"
)

// FirstFixTimeout is the incident's first fix: the feed handler gives up
// after 2s (select on time.After) while its goroutines carry on. Set it as
// [Config.FirstFix] to run that variant.
const FirstFixTimeout = 2 * time.Second

// NewNaive returns the incident's gateway as an http.Handler. It is traced
// with plain otelhttp, server and client side, so Jaeger shows exactly what
// plain otelhttp shows.
//
// With a zero [Config.FirstFix] its feed is the incident's original code:
// it waits for every upstream however long that takes, so while one hangs
// every request hangs with it. With [FirstFixTimeout] it is the incident's
// first fix: the same fan-out raced against time.After.
func NewNaive(cfg Config) http.Handler {
	tp := cfg.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	g := &naive{
		ups:      cfg.Upstreams,
		firstFix: cfg.FirstFix,
		// The default client: no timeout, http.DefaultTransport (two idle
		// connections per host). otelhttp only adds spans.
		client: &http.Client{Transport: otelhttp.NewTransport(http.DefaultTransport, otelhttp.WithTracerProvider(tp))},
	}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.Use(traceIDHeader)
	e.GET(FeedPath, g.feed)
	e.GET(CountPath, g.count)
	app := otelhttp.NewHandler(e, "gateway",
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.URL.Path }),
	)
	return withDebug(app, statsHandler(cfg, nil))
}

type naive struct {
	ups      []Upstream
	firstFix time.Duration
	client   *http.Client
}

type naivePart struct {
	items []upstream.Item
	err   error
}

// feed is the incident's hot handler, bugs included.
func (g *naive) feed(c echo.Context) error {
	// The original passed no context at all, so nothing was ever cancelled.
	// WithoutCancel keeps exactly that behaviour while letting otelhttp link
	// the client spans to this request's trace.
	ctx := context.WithoutCancel(c.Request().Context())
	parts := make([]naivePart, len(g.ups))
	var wg sync.WaitGroup
	for i, up := range g.ups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, itemsURL(up), nil)
			if err != nil {
				parts[i].err = err
				return
			}
			resp, err := g.client.Do(req)
			if err != nil {
				parts[i].err = err
				return
			}
			// Bug: the body is decoded but neither drained nor closed.
			var doc upstream.Document
			if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
				parts[i].err = err
				return
			}
			parts[i].items = doc.Items
		}()
	}
	if g.firstFix <= 0 {
		// The original: wait for the slowest upstream, however long. When
		// one hangs, every request hangs until it comes back.
		wg.Wait()
	} else {
		// The first fix: give up in time...
		done := make(chan struct{})
		go func() {
			wg.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(g.firstFix):
			// ...but only the user gets an answer (an error); the
			// goroutines above, their calls and connections live on.
			return echo.NewHTTPError(http.StatusInternalServerError, "upstreams timed out")
		}
	}
	feed := Feed{Parts: map[string][]upstream.Item{}}
	for i, p := range parts {
		if p.err != nil {
			// No partial results: one upstream down fails the request.
			return echo.NewHTTPError(http.StatusBadGateway, fmt.Sprintf("upstream %s failed", g.ups[i].Name)).WithInternal(p.err)
		}
		feed.Parts[g.ups[i].Name] = p.items
	}
	return c.JSON(http.StatusOK, feed)
}

// count reads one header of the articles upstream.
func (g *naive) count(c echo.Context) error {
	ctx := context.WithoutCancel(c.Request().Context())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, itemsURL(g.ups[0]), nil)
	if err != nil {
		return echo.NewHTTPError(http.StatusInternalServerError).WithInternal(err)
	}
	resp, err := g.client.Do(req) // LEAK: the body is never closed.
	if err != nil {
		return echo.NewHTTPError(http.StatusBadGateway, "articles failed").WithInternal(err)
	}
	return c.JSON(http.StatusOK, Count{Articles: resp.Header.Get(upstream.TotalCountHeader)})
}
