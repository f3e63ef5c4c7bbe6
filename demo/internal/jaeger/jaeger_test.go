package jaeger

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Something other than Jaeger on one of its ports is named at once, instead
// of Jaeger failing to start and the user being sent to its log.
func TestStartNamesTakenPorts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// An ephemeral port stands for Jaeger's: the real ones may be in use by
	// the e2e test running in parallel.
	saved := Addrs
	Addrs = []string{ln.Addr().String()}
	defer func() { Addrs = saved }()

	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(Binary(dir), []byte("#!/bin/sh\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = Start(context.Background(), dir, filepath.Join(dir, "jaeger.log"))
	if !errors.Is(err, ErrPortsTaken) || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Fatalf("Start = %v, want %v naming %s", err, ErrPortsTaken, ln.Addr())
	}
}
