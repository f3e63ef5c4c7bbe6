package load

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunCallsSentBeforeAnswersAndCountsThePileUp(t *testing.T) {
	release := make(chan struct{})
	var arrived atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()

	var sent atomic.Bool
	cfg := Config{URL: srv.URL, RPS: 100, Requests: 10, Sent: func() {
		sent.Store(true)
		// The outage ends once everything is sent, and has arrived: the last
		// request's goroutine may not have run yet when Sent is called, and
		// under -race it could start after the first answer.
		for deadline := time.Now().Add(5 * time.Second); arrived.Load() < 10 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		close(release)
	}}
	if got, want := cfg.SendTime(), 90*time.Millisecond; got != want {
		t.Errorf("SendTime = %s, want %s", got, want)
	}
	res := Run(context.Background(), client, cfg)
	if !sent.Load() {
		t.Fatal("Sent not called")
	}
	s := Summarize(res)
	if s.Requests != 10 || s.OK != 10 {
		t.Errorf("summary %+v, want 10 requests, all ok", s)
	}
	if s.InFlightPeak != 10 {
		t.Errorf("in flight peak %d, want 10: every request waited for the release", s.InFlightPeak)
	}
	if s.Max < 80*time.Millisecond {
		t.Errorf("max latency %s: the first request should have waited for the whole send time", s.Max)
	}
}

func TestInFlightPeak(t *testing.T) {
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	res := []Result{
		{Start: at(0), Latency: 10 * time.Millisecond},
		{Start: at(10), Latency: 10 * time.Millisecond}, // starts as the first ends
		{Start: at(15), Latency: 10 * time.Millisecond},
	}
	if got := inFlightPeak(res); got != 2 {
		t.Errorf("inFlightPeak = %d, want 2", got)
	}
}
