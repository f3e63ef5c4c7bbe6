package upstream_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/telltale-go/telltale/demo/internal/upstream"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func get(ctx context.Context, c *http.Client, url string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/items", nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func TestFaults(t *testing.T) {
	s, err := upstream.Start("articles", upstream.Config{SlowDelay: 100 * time.Millisecond, TrickleInterval: 10 * time.Millisecond, HugeBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := &http.Client{Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	ctx := context.Background()

	_, body, err := get(ctx, c, s.URL())
	if err != nil {
		t.Fatal(err)
	}
	var doc upstream.Document
	if err := json.Unmarshal(body, &doc); err != nil || doc.Service != "articles" || len(doc.Items) == 0 {
		t.Fatalf("healthy: %v %+v", err, doc)
	}

	if err := s.SetFault(upstream.Slow); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, _, err := get(ctx, c, s.URL()); err != nil || time.Since(start) < 100*time.Millisecond {
		t.Errorf("slow: err %v after %s", err, time.Since(start))
	}

	if err := s.SetFault(upstream.Trickle); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if _, b, err := get(ctx, c, s.URL()); err != nil || string(b) != string(body) || time.Since(start) < 50*time.Millisecond {
		t.Errorf("trickle: err %v, same body %v, after %s", err, string(b) == string(body), time.Since(start))
	}

	if err := s.SetFault(upstream.Huge); err != nil {
		t.Fatal(err)
	}
	if _, b, err := get(ctx, c, s.URL()); err != nil || len(b) < 1<<19 {
		t.Errorf("huge: err %v, %d bytes", err, len(b))
	}

	if err := s.SetFault(upstream.BlackHole); err != nil {
		t.Fatal(err)
	}
	bctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, _, err = get(bctx, c, s.URL())
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("black hole: err %v, want a deadline", err)
	}

	if err := s.SetFault(upstream.Dead); err != nil {
		t.Fatal(err)
	}
	if _, _, err := get(ctx, c, s.URL()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dead: err %v, want connection refused", err)
	}

	if err := s.SetFault(upstream.Healthy); err != nil {
		t.Fatal(err)
	}
	if _, _, err := get(ctx, c, s.URL()); err != nil {
		t.Errorf("back from dead: %v", err)
	}
	if err := s.SetFault("flaky"); !errors.Is(err, upstream.ErrUnknownFault) {
		t.Errorf("unknown fault: %v", err)
	}
}

func TestBlackHoleReleasedWhenFaultChanges(t *testing.T) {
	s, err := upstream.Start("ads", upstream.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.SetFault(upstream.BlackHole); err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	errc := make(chan error, 1)
	go func() {
		_, _, err := get(context.Background(), c, s.URL())
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if err := s.SetFault(upstream.Healthy); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("released request: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("black-holed request not released")
	}
}
