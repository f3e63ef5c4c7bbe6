package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/telltale-go/telltale/demo/internal/gateway"
	"github.com/telltale-go/telltale/demo/internal/telemetry"
)

// gatewayCommand is the hidden subcommand the runner starts each gateway
// with: one process per gateway, so that goroutines and heap are each its
// own. It prints "listening URL" on stdout once it serves, and stops on
// SIGTERM, SIGINT or when its stdin closes (the runner died).
const gatewayCommand = "gateway"

// The gateway modes, in the order the report shows them: two processes run
// the naive code (the incident's original, and its first fix), one the
// same handlers guarded by telltale.
const (
	modeNaive    = "naive"
	modeFirstFix = "first-fix"
	modeGuarded  = "guarded"
)

var gatewayModes = []string{modeNaive, modeFirstFix, modeGuarded}

// listeningPrefix starts the line a gateway process prints when it serves.
const listeningPrefix = "listening "

func runGateway(args []string) error {
	fs := flag.NewFlagSet(gatewayCommand, flag.ContinueOnError)
	mode := fs.String("mode", "", "naive, first-fix or guarded")
	service := fs.String("service", "", "service.name of the traces")
	otlp := fs.String("otlp", "", "OTLP/HTTP endpoint URL (empty: OTEL_EXPORTER_OTLP_* variables)")
	ups := fs.String("upstreams", "", "JSON list of upstreams")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var upstreams []gateway.Upstream
	if err := json.Unmarshal([]byte(*ups), &upstreams); err != nil || len(upstreams) == 0 {
		return fmt.Errorf("gateway: -upstreams: want a JSON list of upstreams (%v)", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// The runner holds our stdin open; EOF means it is gone.
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop()
	}()

	tp, rec, err := telemetry.NewProvider(ctx, *service, *otlp)
	if err != nil {
		return err
	}
	// The gateway is an application: it may set the global propagator, so
	// that both gateways inject and extract W3C trace context.
	otel.SetTextMapPropagator(propagation.TraceContext{})
	flush := func() error {
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return tp.ForceFlush(fctx)
	}
	cfg := gateway.Config{Upstreams: upstreams, TracerProvider: tp, Recorder: rec, Flush: flush}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("service", *service)

	var h http.Handler
	closeApp := func() error { return nil }
	switch *mode {
	case modeNaive:
		h = gateway.NewNaive(cfg)
	case modeFirstFix:
		cfg.FirstFix = gateway.FirstFixTimeout
		h = gateway.NewNaive(cfg)
	case modeGuarded:
		h, closeApp = gateway.NewGuarded(cfg, logger)
	default:
		return fmt.Errorf("gateway: -mode %q: want one of %v", *mode, gatewayModes)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(out, "%shttp://%s\n", listeningPrefix, ln.Addr())
	if err := out.Flush(); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}

	select {
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("gateway: serve: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The runner ends every outage before it stops the gateways, so the
	// naive gateway's handlers have returned; if one still waits on a stuck
	// upstream (the runner died), Shutdown gives up after 5s.
	err = srv.Shutdown(sctx)
	err = errors.Join(err, closeApp(), tp.Shutdown(sctx))
	if err != nil {
		logger.Warn("gateway: shutdown", "err", err)
	}
	return nil
}
