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

	ttmw "github.com/telltale-go/telltale/middleware"

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
	sample := fs.Float64("sample", defaultSample, "head-sampling ratio")
	budget := fs.Int("anomaly-budget", defaultAnomalyBudget, "guarded: anomaly traces exported per second at most")
	traceURL := fs.String("trace-url", "", "guarded: trace UI URL with {trace_id}, for the inspector's links")
	echoMajor := fs.String("echo", gateway.EchoV5, "guarded: the Echo major it runs on, v5 or v4")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkEcho(*echoMajor); err != nil {
		return err
	}
	if err := checkSample(*sample); err != nil {
		return err
	}
	if *traceURL != "" {
		if _, err := (ttmw.InspectorConfig{TraceURL: *traceURL}).ToHandler(); err != nil {
			return fmt.Errorf("gateway: -trace-url: %w", err)
		}
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

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("service", *service)
	tcfg := telemetry.Config{Service: *service, Endpoint: *otlp, SampleRatio: *sample, Logger: logger}
	if *mode == modeGuarded {
		// Only the guarded gateway has telltale to find anomalies, so only
		// its provider exports the anomalies of unsampled requests.
		tcfg.AnomalyBudget = *budget
		tcfg.Anomalies = telemetry.NewAnomalyCounter()
		defer func() { _ = tcfg.Anomalies.Shutdown(context.Background()) }()
	}
	tp, rec, err := telemetry.NewProvider(ctx, tcfg)
	if err != nil {
		return err
	}
	// The gateway is an application: it may set the global propagator, so
	// that every gateway injects and extracts W3C trace context.
	otel.SetTextMapPropagator(propagation.TraceContext{})
	flush := func() error {
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return tp.ForceFlush(fctx)
	}
	probe := gateway.StartProbe()
	defer probe.Close()
	cfg := gateway.Config{Upstreams: upstreams, TracerProvider: tp, Recorder: rec, Flush: flush, Anomalies: tcfg.Anomalies, TraceURL: *traceURL, Probe: probe, Echo: *echoMajor}

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
