package load

import (
	"context"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Config describes one burst of load.
type Config struct {
	// URL is requested with GET.
	URL string
	// RPS is the arrival rate (default 50).
	RPS float64
	// Requests is how many requests to send; zero means as many as fit in
	// Duration.
	Requests int
	// Duration bounds the burst when Requests is zero (default 5s).
	Duration time.Duration
	// Timeout is how long one request may take, the user's patience
	// (default 30s).
	Timeout time.Duration
	// Header names response headers to keep in [Result.Header].
	Header []string
	// Sent, if set, is called once the last request has been sent (or
	// sending stopped because ctx ended), while answers may still be
	// awaited: the moment a scenario's outage ends.
	Sent func()
}

// SendTime is how long sending the burst of cfg takes: from the first
// request to the last.
func (cfg Config) SendTime() time.Duration {
	cfg = cfg.withDefaults()
	return time.Duration(cfg.requests()-1) * cfg.interval()
}

func (cfg Config) withDefaults() Config {
	if cfg.RPS <= 0 {
		cfg.RPS = 50
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 5 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	return cfg
}

func (cfg Config) requests() int {
	if cfg.Requests > 0 {
		return cfg.Requests
	}
	return max(1, int(cfg.RPS*cfg.Duration.Seconds()))
}

func (cfg Config) interval() time.Duration {
	return time.Duration(float64(time.Second) / cfg.RPS)
}

// Result is one request's outcome.
type Result struct {
	// Start is when the request was sent.
	Start time.Time `json:"start"`
	// Latency is the time until the body was read to its end.
	Latency time.Duration `json:"latency_ns"`
	// Status is the HTTP status, 0 when no response came.
	Status int `json:"status"`
	// Err is the client error, if any.
	Err string `json:"err,omitempty"`
	// Header holds the kept response headers.
	Header map[string]string `json:"header,omitempty"`
}

// NewClient returns the client the load is sent with: one with room for as
// many connections as the load needs, so the load generator is never the
// bottleneck.
func NewClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 1000
	tr.MaxIdleConnsPerHost = 1000
	return &http.Client{Transport: tr}
}

// Run sends the burst and returns every request's result, in sending order,
// once all have ended. Cancelling ctx stops sending and cancels the requests
// in flight.
func Run(ctx context.Context, client *http.Client, cfg Config) []Result {
	cfg = cfg.withDefaults()
	n := cfg.requests()
	results := make([]Result, n)
	var wg sync.WaitGroup
	tick := time.NewTicker(cfg.interval())
	defer tick.Stop()
	sent := 0
sending:
	for i := range n {
		if i > 0 {
			select {
			case <-ctx.Done():
				break sending
			case <-tick.C:
			}
		}
		sent++
		wg.Go(func() { results[i] = one(ctx, client, cfg) })
	}
	if cfg.Sent != nil {
		cfg.Sent()
	}
	wg.Wait()
	// Truncated only once every request's goroutine has written its result.
	return results[:sent]
}

func one(ctx context.Context, client *http.Client, cfg Config) Result {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	r := Result{Start: time.Now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.URL, nil)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	resp, err := client.Do(req)
	if err != nil {
		r.Latency = time.Since(r.Start)
		r.Err = err.Error()
		return r
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	r.Latency = time.Since(r.Start)
	r.Status = resp.StatusCode
	if err != nil {
		r.Err = err.Error()
	}
	for _, h := range cfg.Header {
		if v := resp.Header.Get(h); v != "" {
			if r.Header == nil {
				r.Header = map[string]string{}
			}
			r.Header[h] = v
		}
	}
	return r
}

// Summary condenses results.
type Summary struct {
	// Requests counts the results.
	Requests int `json:"requests"`
	// OK counts 2xx answers without a client error.
	OK int `json:"ok"`
	// Errors counts the others: non-2xx answers and client errors.
	Errors int `json:"errors"`
	// P50, P99 and Max are latency percentiles over every result.
	P50 time.Duration `json:"p50_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`
	// InFlightPeak is the most requests that were awaiting their answer at
	// the same time: how far requests piled up.
	InFlightPeak int `json:"in_flight_peak"`
}

// Summarize computes a [Summary] of results.
func Summarize(results []Result) Summary {
	s := Summary{Requests: len(results)}
	lat := make([]time.Duration, 0, len(results))
	for _, r := range results {
		lat = append(lat, r.Latency)
		if r.Err == "" && r.Status >= 200 && r.Status < 300 {
			s.OK++
		} else {
			s.Errors++
		}
	}
	if len(lat) == 0 {
		return s
	}
	s.InFlightPeak = inFlightPeak(results)
	slices.Sort(lat)
	s.P50 = Percentile(lat, 0.50)
	s.P99 = Percentile(lat, 0.99)
	s.Max = lat[len(lat)-1]
	return s
}

// inFlightPeak sweeps the requests' start and end times.
func inFlightPeak(results []Result) int {
	type edge struct {
		at    time.Time
		delta int
	}
	edges := make([]edge, 0, 2*len(results))
	for _, r := range results {
		edges = append(edges, edge{r.Start, 1}, edge{r.Start.Add(r.Latency), -1})
	}
	// Ends before starts at the same instant: touching is not overlapping.
	slices.SortFunc(edges, func(a, b edge) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.delta - b.delta
	})
	n, peak := 0, 0
	for _, e := range edges {
		n += e.delta
		peak = max(peak, n)
	}
	return peak
}

// Percentile returns the q-quantile (0 < q <= 1) of sorted, nearest rank.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
