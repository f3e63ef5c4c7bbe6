package transport_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/telltale-go/telltale/internal/faulty"
	"github.com/telltale-go/telltale/transport"
)

// A request without a deadline gets the backstop deadline.
func TestBackstopAppliesWithoutADeadline(t *testing.T) {
	addr := faulty.Listen(t, func(net.Conn) {})
	e := newEnv(t, nil, transport.WithTimeout(100*time.Millisecond))
	start := time.Now()
	_, err := e.client.Get("http://" + addr + "/")
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("err = %v after %s, want the 100ms backstop deadline", err, time.Since(start))
	}
}

// A request marked LongLived gets no backstop: its stream outlives it. An
// upgraded connection outlives it without the mark.
func TestLongLivedRequestsHaveNoBackstop(t *testing.T) {
	const backstop = 50 * time.Millisecond
	t.Run("LongLived", func(t *testing.T) {
		srv := holdOpen(t)
		e := newEnv(t, nil, transport.WithTimeout(backstop))
		resp := get(t, e.client, transport.LongLived(context.Background()), srv.URL)
		defer resp.Body.Close()
		time.Sleep(3 * backstop)
		if _, err := resp.Body.Read(make([]byte, 5)); err != nil {
			t.Errorf("a long-lived stream failed after the backstop: %v", err)
		}
	})
	t.Run("upgrade", func(t *testing.T) {
		srv := upgradeServer(t, func(rw io.ReadWriter, _ func()) {
			time.Sleep(3 * backstop)
			echoLine(rw, nil)
		})
		e := newEnv(t, nil, transport.WithTimeout(backstop))
		resp := upgrade(t, e.client, srv.URL)
		defer resp.Body.Close()
		if _, err := resp.Body.(io.Writer).Write([]byte("late\n")); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, int64(len("echo: late\n"))))
		if err != nil || string(b) != "echo: late\n" {
			t.Errorf("the tunnel after the backstop: %q, %v", b, err)
		}
	})
}
