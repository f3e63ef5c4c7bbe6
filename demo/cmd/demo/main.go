package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/telltale-go/telltale/demo/internal/gateway"
	"github.com/telltale-go/telltale/demo/internal/jaeger"
	"github.com/telltale-go/telltale/demo/internal/load"
	"github.com/telltale-go/telltale/demo/internal/telemetry"
)

func main() {
	var err error
	if len(os.Args) > 1 && os.Args[1] == gatewayCommand {
		err = runGateway(os.Args[2:])
	} else {
		err = run(os.Args[1:], os.Stdout)
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errInterrupted):
		// Everything started is stopped by now; 128+SIGINT, as shells do.
		fmt.Fprintln(os.Stderr, err)
		os.Exit(130)
	default:
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// errInterrupted is returned by run when Ctrl-C (or SIGTERM) stopped it
// before the report.
var errInterrupted = errors.New("demo: interrupted before the report; everything it started is stopped")

// options are the runner's flags.
type options struct {
	scenarios     []scenario
	gateways      []string
	oneByOne      map[string]bool // scenarios whose gateways run one after another
	load          loadOptions
	sample        float64
	anomalyBudget int
	otlp          string
	exit          bool
	jsonOut       string
	logDir        string
	echo          string // the Echo major of the guarded gateway
	fleet         bool   // send the traces to jaeger.StartFleet's tail-sampling fleet
}

// defaultSample is the head-sampling ratio production services run with.
const defaultSample = 0.01

// defaultAnomalyBudget is the guarded gateway's budget of anomaly traces a
// second in the demo: above the anomalies of its default load (50 requests
// a second, every one anomalous in most scenarios), so that the report can
// account for every anomaly. telltale's own default is 10 a second.
const defaultAnomalyBudget = 200

// checkEcho checks an Echo major for the guarded gateway.
func checkEcho(major string) error {
	if !slices.Contains(gateway.EchoMajors, major) {
		return fmt.Errorf("demo: -echo %q: want one of %s", major, strings.Join(gateway.EchoMajors, ", "))
	}
	return nil
}

// checkSample checks a head-sampling ratio.
func checkSample(r float64) error {
	if !(r >= 0 && r <= 1) {
		return fmt.Errorf("demo: -sample %g: want a ratio between 0 and 1", r)
	}
	return nil
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	names := fs.String("scenario", "all", "scenarios to run, comma-separated: all, or any of "+scenarioNames())
	gwNames := fs.String("gateways", strings.Join(gatewayModes, ","), "gateways to run, comma-separated, in the report's order")
	oneByOne := fs.String("one-by-one", "huge",
		"scenarios whose gateways run one after another, each with the machine to itself, instead of at the same time: "+
			"none, all, or a comma-separated list (in huge, the naive gateways decoding hundreds of 4 MiB bodies starve the others of CPU)")
	fs.Float64Var(&o.load.rps, "rps", 50, "requests per second sent to each gateway")
	fs.IntVar(&o.load.requests, "requests", 0, "requests per gateway and scenario (overrides -duration)")
	fs.DurationVar(&o.load.duration, "duration", 5*time.Second, "load duration per scenario")
	fs.DurationVar(&o.load.settle, "settle", 3*time.Second, "wait after the load before measuring what is left")
	fs.Float64Var(&o.sample, "sample", defaultSample, "head-sampling ratio of every gateway, ParentBased(TraceIDRatioBased(ratio)): 0.01 is what production runs, 1 keeps every trace")
	fs.IntVar(&o.anomalyBudget, "anomaly-budget", defaultAnomalyBudget,
		"anomaly traces per second the guarded gateway exports at most for requests the head sampler dropped. "+
			"telltale's default is 10/s, so that an outage (every request anomalous) cannot flood the trace pipeline "+
			"while still giving hundreds of examples a minute; the demo sizes it to its load so that the report can "+
			"account for every anomaly (it says how many were over the budget)")
	fs.StringVar(&o.otlp, "otlp", "", "OTLP/HTTP endpoint URL to send traces to instead of the built-in Jaeger (default: $OTEL_EXPORTER_OTLP_ENDPOINT, else built-in Jaeger)")
	fs.BoolVar(&o.exit, "exit", false, "stop everything after the report instead of leaving Jaeger running")
	fs.StringVar(&o.jsonOut, "json", "", "also write the results as JSON to this file")
	fs.StringVar(&o.logDir, "logs", filepath.Join(os.TempDir(), "telltale-demo"), "directory for the Jaeger, gateway and upstream logs")
	fs.StringVar(&o.echo, "echo", gateway.EchoV5, "the Echo major the guarded gateway runs on: v5 (telltale's middleware/echov5) or v4 (telltale's middleware)")
	fs.BoolVar(&o.fleet, "fleet", false,
		"send the traces to a two-tier Jaeger fleet instead of the all-in-one: every service keeps every trace at the head "+
			"(-sample 1), and the collector tier's tail sampling keeps every trace a span of which says telltale.anomaly=true, "+
			"whole, and 10% of the others; the report says, per scenario and service, how many traces were kept of those sent")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if err := checkEcho(o.echo); err != nil {
		return o, err
	}
	if o.fleet {
		explicit := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
		switch {
		case explicit["sample"] && o.sample != 1:
			return o, errors.New("demo: -fleet samples every trace at the head, the collector tier decides: leave -sample out (or set it to 1)")
		case o.otlp != "":
			return o, errors.New("demo: -fleet starts its own Jaeger fleet: leave -otlp out")
		}
		o.sample = 1
	}
	if *names == "all" {
		o.scenarios = scenarios
	} else {
		for _, n := range strings.Split(*names, ",") {
			sc, ok := scenarioByName(strings.TrimSpace(n))
			if !ok {
				return o, fmt.Errorf("demo: unknown scenario %q (want all or %s)", n, scenarioNames())
			}
			o.scenarios = append(o.scenarios, sc)
		}
	}
	o.oneByOne = map[string]bool{}
	switch *oneByOne {
	case "none", "":
	case "all":
		for _, sc := range scenarios {
			o.oneByOne[sc.name] = true
		}
	default:
		for _, n := range strings.Split(*oneByOne, ",") {
			sc, ok := scenarioByName(strings.TrimSpace(n))
			if !ok {
				return o, fmt.Errorf("demo: -one-by-one: unknown scenario %q (want none, all or %s)", n, scenarioNames())
			}
			o.oneByOne[sc.name] = true
		}
	}
	for _, n := range strings.Split(*gwNames, ",") {
		n = strings.TrimSpace(n)
		if !slices.Contains(gatewayModes, n) {
			return o, fmt.Errorf("demo: unknown gateway %q (want some of %s)", n, strings.Join(gatewayModes, ","))
		}
		if !slices.Contains(o.gateways, n) {
			o.gateways = append(o.gateways, n)
		}
	}
	if o.load.rps <= 0 {
		return o, errors.New("demo: -rps must be positive")
	}
	if err := checkSample(o.sample); err != nil {
		return o, err
	}
	if o.anomalyBudget <= 0 {
		return o, errors.New("demo: -anomaly-budget must be positive")
	}
	if o.otlp != "" {
		// Checked here: a gateway would only fail to start with it.
		if _, err := telemetry.ParseEndpoint(o.otlp); err != nil {
			return o, fmt.Errorf("demo: -otlp: %w", err)
		}
	}
	return o, nil
}

func scenarioNames() string {
	var n []string
	for _, s := range scenarios {
		n = append(n, s.name)
	}
	return strings.Join(n, ",")
}

func run(args []string, out io.Writer) (err error) {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	// SIGHUP too: a closed terminal must stop what the demo started, as
	// Ctrl-C does.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	defer func() {
		// Whatever failed once the user interrupted (the Jaeger build, a
		// gateway's start, a scenario) failed because of it.
		if err != nil && ctx.Err() != nil {
			err = errInterrupted
		}
	}()
	if err := os.MkdirAll(o.logDir, 0o755); err != nil {
		return fmt.Errorf("demo: %w", err)
	}

	// Where traces go.
	endpoint, queryURL := o.otlp, ""
	var jg *jaeger.Process
	var fleet *jaeger.Fleet
	switch {
	case o.fleet:
		if fleet, err = startFleet(ctx, o.logDir, out); err != nil {
			return err
		}
		endpoint, queryURL = jaeger.CollectorOTLPHTTP, jaeger.QueryURL
	case endpoint != "":
	case os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "":
		fmt.Fprintln(out, "» traces go to the collector of OTEL_EXPORTER_OTLP_*; no Jaeger started")
	default:
		endpoint, queryURL = jaeger.OTLPHTTP, jaeger.QueryURL
		if jg, err = startJaeger(ctx, o.logDir, out); err != nil {
			return err
		}
	}
	defer func() {
		switch {
		case jg != nil:
			fmt.Fprintln(out, "» stopping Jaeger")
			_ = jg.Stop()
		case fleet != nil:
			fmt.Fprintln(out, "» stopping the Jaeger fleet")
			_ = fleet.Stop()
		}
	}()

	// The upstreams run in this process, each a telltale service with a
	// tracer provider of its own; their warnings go to one log.
	upLogPath := filepath.Join(o.logDir, "upstreams.log")
	upLog, err := os.Create(upLogPath)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer upLog.Close()
	upTelemetry := telemetry.Config{
		Endpoint:      endpoint,
		SampleRatio:   o.sample,
		AnomalyBudget: o.anomalyBudget,
		Logger:        slog.New(slog.NewTextHandler(upLog, nil)),
	}

	fmt.Fprintf(out, "» starting %d×3 upstreams (telltale services: articles, users, ads; log: %s) and the gateways on 127.0.0.1\n", len(o.gateways), upLogPath)
	var gws []*gatewayProc
	defer func() {
		for _, g := range gws {
			g.stop()
			g.ups.close()
			_ = g.ups.shutdown(ctx)
		}
	}()
	for _, mode := range o.gateways {
		ups, err := startUpstreams(ctx, upTelemetry)
		if err != nil {
			return err
		}
		spec := gatewaySpec{
			mode:          mode,
			service:       "gateway-" + mode,
			otlp:          endpoint,
			logFile:       filepath.Join(o.logDir, "gateway-"+mode+".log"),
			sample:        o.sample,
			anomalyBudget: o.anomalyBudget,
			echo:          o.echo,
		}
		if queryURL != "" {
			spec.traceURL = jaeger.TraceURL(queryURL, "{trace_id}")
		}
		g, err := startGateway(ctx, spec, ups)
		if err != nil {
			ups.close()
			_ = ups.shutdown(ctx)
			return err
		}
		gws = append(gws, g)
		what := ""
		if mode == modeGuarded {
			what = " on Echo " + o.echo
		}
		u := ups.servers
		fmt.Fprintf(out, "  %-9s %s%s  (upstreams %s, %s, %s)\n", mode, g.url, what, u[0].URL(), u[1].URL(), u[2].URL())
	}

	client := load.NewClient()
	defer client.CloseIdleConnections()
	var jc *jaeger.Client
	if queryURL != "" {
		jc = newJaegerClient(queryURL)
		defer jc.HTTP.CloseIdleConnections()
	}
	flushErrs := make([]error, len(gws))
	var results []scenarioResult
	for i, sc := range o.scenarios {
		how := describeLoad(o.load)
		if o.oneByOne[sc.name] && len(gws) > 1 {
			how += ", the gateways one after another"
		}
		fmt.Fprintf(out, "» scenario %d/%d %s: %s — %s\n", i+1, len(o.scenarios), sc.name, sc.about, how)
		res, err := sc.run(ctx, client, gws, o.load, o.oneByOne[sc.name] && len(gws) > 1, out)
		if err == nil {
			// The traces of the scenario, in Jaeger before it is checked.
			flushAll(ctx, gws, flushErrs, out)
			if jc != nil {
				err := checkScenario(ctx, jc, &res, o.fleet)
				if err != nil && ctx.Err() == nil {
					fmt.Fprintf(out, "    Jaeger could not be queried, its check is skipped: %v\n", err)
				}
			}
			err = ctx.Err()
		}
		if err != nil {
			if ctx.Err() != nil {
				fmt.Fprintln(out, "» interrupted: stopping the gateways, the upstreams and Jaeger")
			}
			return err
		}
		results = append(results, res)
		for _, g := range res.Gateways {
			fmt.Fprintf(out, "    %-9s p50 %-8s p99 %-8s max %-8s errors %d/%d%s\n", g.Gateway, ms(g.Summary.P50), ms(g.Summary.P99), ms(g.Summary.Max), g.Summary.Errors, g.Summary.Requests, progressJaeger(g))
		}
		if line := progressFleet(res); line != "" {
			fmt.Fprintf(out, "    %s\n", line)
		}
	}

	fmt.Fprintln(out, "» flushing the gateways' traces")
	flushAll(ctx, gws, flushErrs, out)
	flushFailed := 0
	for _, err := range flushErrs {
		if err != nil {
			flushFailed++
		}
	}
	printReport(out, results, reportInfo{queryURL: queryURL, sample: o.sample, anomalyBudget: o.anomalyBudget, echo: o.echo, fleet: o.fleet})
	if flushFailed > 0 {
		to := endpoint
		if to == "" {
			to = "the collector of OTEL_EXPORTER_OTLP_*"
		}
		fmt.Fprintf(out, "\nWARNING: %d of %d gateways (or their upstreams) could not send their traces to %s (errors above, details in %s/gateway-*.log and upstreams.log): the figures above stand, the traces may be missing.\n", flushFailed, len(gws), to, o.logDir)
	}
	if o.jsonOut != "" {
		if err := writeJSON(o.jsonOut, results); err != nil {
			return err
		}
	}
	if o.exit {
		return nil
	}
	if queryURL != "" {
		fmt.Fprintf(out, "\nJaeger keeps running with these traces (%s). Press Ctrl-C to stop everything.\n", queryURL)
	} else {
		fmt.Fprintf(out, "\nThe gateways keep running. Press Ctrl-C to stop everything.\n")
	}
	<-ctx.Done()
	fmt.Fprintln(out, "\n» stopping the gateways (they flush their traces) and the upstreams")
	return nil
}

// flushAll makes every gateway, and its upstreams, export their ended
// spans, and keeps the first error of each.
func flushAll(ctx context.Context, gws []*gatewayProc, errs []error, out io.Writer) {
	for i, g := range gws {
		for _, err := range []error{g.flush(ctx), g.ups.flush(ctx)} {
			if err == nil {
				continue
			}
			fmt.Fprintln(out, "   ", err)
			if errs[i] == nil {
				errs[i] = err
			}
		}
	}
}

// progressJaeger is what Jaeger holds of a gateway's anomalous requests,
// for the progress line.
func progressJaeger(g gatewayResult) string {
	if g.Jaeger == nil || g.Anomalous == 0 {
		return ""
	}
	return fmt.Sprintf("; anomalous %d, in Jaeger %d", g.Anomalous, g.Jaeger.AnomalousFound)
}

// startJaeger reuses a Jaeger already healthy on the demo's ports, or
// builds (once) and starts the one of demo/jaeger.
func startJaeger(ctx context.Context, logDir string, out io.Writer) (*jaeger.Process, error) {
	if jaeger.Healthy(ctx) {
		fmt.Fprintf(out, "» a Jaeger already answers on %s: using it\n", jaeger.HealthURL)
		return nil, nil
	}
	dir, err := jaeger.Dir()
	if err != nil {
		return nil, fmt.Errorf("%w: run the demo from the telltale repository (make demo), or send the traces to your own collector with -otlp URL", err)
	}
	if _, err := os.Stat(jaeger.Binary(dir)); err != nil {
		fmt.Fprintf(out, "» building Jaeger v2 in %s (first time only: ~4 min, ~2 GB RAM; later builds take seconds)\n", dir)
		if err := jaeger.Build(ctx, dir, out); err != nil {
			return nil, err
		}
	}
	log := filepath.Join(logDir, "jaeger.log")
	fmt.Fprintf(out, "» starting Jaeger (log: %s)\n", log)
	start := time.Now()
	p, err := jaeger.Start(ctx, dir, log)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "  healthy after %s; OTLP %s, query %s\n", time.Since(start).Round(10*time.Millisecond), jaeger.OTLPHTTP, jaeger.QueryURL)
	return p, nil
}

// startFleet reuses a fleet already healthy on the fleet's addresses
// (returning nil), or builds Jaeger (once) and starts the two-tier fleet
// of demo/jaeger: a storage and query tier, behind a collector tier that
// decides by tail sampling.
func startFleet(ctx context.Context, logDir string, out io.Writer) (*jaeger.Fleet, error) {
	if jaeger.FleetHealthy(ctx) {
		fmt.Fprintf(out, "» a Jaeger fleet already answers on %s and %s: using it\n", jaeger.CollectorHealthURL, jaeger.StorageHealthURL)
		return nil, nil
	}
	dir, err := jaeger.Dir()
	if err != nil {
		return nil, fmt.Errorf("%w: run the demo from the telltale repository (make -C demo fleet)", err)
	}
	if _, err := os.Stat(jaeger.Binary(dir)); err != nil {
		fmt.Fprintf(out, "» building Jaeger v2 in %s (first time only: ~4 min, ~2 GB RAM; later builds take seconds)\n", dir)
		if err := jaeger.Build(ctx, dir, out); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(out, "» starting the Jaeger fleet (logs: %s/jaeger-collector.log, jaeger-storage.log)\n", logDir)
	start := time.Now()
	f, err := jaeger.StartFleet(ctx, dir, logDir)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "  healthy after %s; services export to the collector tier at %s (tail sampling), query %s\n",
		time.Since(start).Round(10*time.Millisecond), f.OTLPHTTP, f.QueryURL)
	return f, nil
}

func describeLoad(lo loadOptions) string {
	if lo.requests > 0 {
		return fmt.Sprintf("%d requests at %g/s per gateway", lo.requests, lo.rps)
	}
	return fmt.Sprintf("%g requests/s for %s per gateway", lo.rps, lo.duration)
}
