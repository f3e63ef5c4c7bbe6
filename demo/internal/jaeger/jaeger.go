package jaeger

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The fixed loopback addresses of demo/jaeger/config.yaml.
const (
	// OTLPHTTP is the OTLP/HTTP receiver, for exporters.
	OTLPHTTP = "http://127.0.0.1:4318"
	// QueryURL is the query service: the HTTP API and the UI.
	QueryURL = "http://127.0.0.1:16686"
	// HealthURL answers 200 once Jaeger is ready.
	HealthURL = "http://127.0.0.1:13133/status"
)

// Module is where Jaeger's own module lives, relative to the demo module.
const Module = "jaeger"

// ToolPackage is the package built into the Jaeger binary.
const ToolPackage = "github.com/jaegertracing/jaeger/cmd/jaeger"

// Dir locates demo/jaeger from the working directory: the demo module
// itself, the repository root, or any directory below the demo module (as
// for its tests).
func Dir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("jaeger: %w", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		for _, c := range []string{filepath.Join(d, Module), filepath.Join(d, "demo", Module)} {
			if _, err := os.Stat(filepath.Join(c, "config.yaml")); err == nil {
				return c, nil
			}
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("jaeger: no %s/config.yaml above %s", Module, wd)
		}
	}
}

// Binary returns where [Build] puts the binary inside dir.
func Binary(dir string) string { return filepath.Join(dir, "bin", "jaeger") }

// Build runs `go build` of Jaeger in dir into [Binary]. A cold build takes a
// few minutes, so every 10 seconds it writes to progress the elapsed time and
// how many packages are compiled.
func Build(ctx context.Context, dir string, progress io.Writer) error {
	start := time.Now()
	// Built under another name and renamed once complete: an interrupted
	// build must not leave a truncated binary that the next run would start.
	tmp := Binary(dir) + ".tmp"
	defer os.Remove(tmp)
	cmd := exec.CommandContext(ctx, "go", "build", "-v", "-o", tmp, ToolPackage)
	cmd.Dir = dir
	// go build in a process group of its own, killed as a whole when ctx
	// ends (Ctrl-C): killing only the go command would leave its compile
	// and link processes running, and holding the output pipe open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return fmt.Errorf("jaeger: build: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("jaeger: build: %w", err)
	}
	var tail []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		n := 0
		last := time.Now()
		for sc.Scan() {
			line := sc.Text()
			tail = append(tail, line)
			if len(tail) > 20 {
				tail = tail[1:]
			}
			if strings.HasPrefix(line, "#") || strings.Contains(line, " ") {
				continue // a compiler message, kept for the error
			}
			n++
			if time.Since(last) >= 10*time.Second {
				last = time.Now()
				fmt.Fprintf(progress, "  jaeger build: %s, %d packages compiled (last: %s)\n", time.Since(start).Round(time.Second), n, line)
			}
		}
	}()
	<-done
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("jaeger: build interrupted: %w", ctx.Err())
		}
		return fmt.Errorf("jaeger: go build in %s: %w\n%s", dir, err, strings.Join(tail, "\n"))
	}
	if err := os.Rename(tmp, Binary(dir)); err != nil {
		return fmt.Errorf("jaeger: %w", err)
	}
	fmt.Fprintf(progress, "  jaeger build: done in %s\n", time.Since(start).Round(time.Second))
	return nil
}

// Process is a Jaeger started by [Start].
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	// Log is the file Jaeger's output goes to.
	Log string
}

// ErrPortsTaken is returned by [Start] when something that is not a healthy
// Jaeger already listens on Jaeger's ports.
var ErrPortsTaken = errors.New("jaeger: ports taken")

// healthClient keeps no idle connection: health checks are rare, and a
// pooled connection would outlive the caller (and upset goleak in tests).
var healthClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// Healthy reports whether a Jaeger answers on [HealthURL].
func Healthy(ctx context.Context) bool { return healthy(ctx, HealthURL) }

// healthy reports whether url (a healthcheckv2 status URL) answers 200.
func healthy(ctx context.Context, url string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := healthClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

// Addrs are the loopback addresses Jaeger listens on with config.yaml.
var Addrs = []string{"127.0.0.1:4317", "127.0.0.1:4318", "127.0.0.1:16685", "127.0.0.1:16686", "127.0.0.1:13133"}

// takenAddrs returns the addresses of addrs something already listens on.
func takenAddrs(addrs []string) []string {
	var taken []string
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			taken = append(taken, a)
			continue
		}
		_ = ln.Close()
	}
	return taken
}

// An Option configures [Start].
type Option func(*launch)

// WithUI serves the Jaeger UI's static files from dir (a build of
// jaeger-ui, such as the one the official release binaries embed) instead
// of the placeholder page a binary built from the Go module serves. dir is
// made absolute: Jaeger resolves a relative one against its own working
// directory.
func WithUI(dir string) Option {
	return func(l *launch) {
		if abs, err := filepath.Abs(dir); err == nil {
			dir = abs
		}
		l.sets = append(l.sets, "extensions.jaeger_query.ui.assets_path="+dir)
	}
}

// Start runs the binary of dir with dir's config.yaml, logging to logFile,
// and waits until it is healthy (at most 30s). It returns [ErrPortsTaken]
// at once if one of [Addrs] is already in use.
func Start(ctx context.Context, dir, logFile string, opts ...Option) (*Process, error) {
	bin := Binary(dir)
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("jaeger: binary not built: %w", err)
	}
	if taken := takenAddrs(Addrs); len(taken) > 0 {
		return nil, fmt.Errorf("%w: %s already in use by a program that is not a healthy Jaeger (%s does not answer); stop it, or send the traces to your own collector with -otlp URL", ErrPortsTaken, strings.Join(taken, ", "), HealthURL)
	}
	l := launch{
		config: filepath.Join(dir, "config.yaml"),
		health: HealthURL,
		log:    logFile,
	}
	for _, o := range opts {
		o(&l)
	}
	return l.start(ctx, bin)
}

// launch is how one Jaeger process is run: [Start]'s all-in-one, or one
// tier of [StartFleet]'s fleet.
type launch struct {
	// name is the process in messages ("storage tier"); empty for the
	// all-in-one.
	name string
	// config is the path of its YAML config.
	config string
	// sets are --set overrides of the config, as "key=value".
	sets []string
	// env is added to the environment it inherits, as "KEY=value".
	env []string
	// health is the healthcheckv2 status URL polled until it answers 200.
	health string
	// log is the file its output goes to.
	log string
}

// errorf returns an error prefixed with the package and l's name.
func (l launch) errorf(format string, a ...any) error {
	prefix := "jaeger: "
	if l.name != "" {
		prefix += l.name + ": "
	}
	return fmt.Errorf(prefix+format, a...)
}

// start runs bin as l says and waits until it is healthy (at most 30s).
// Checking its ports first is the caller's job: the right advice when they
// are taken depends on what is being started.
func (l launch) start(ctx context.Context, bin string) (*Process, error) {
	log, err := os.Create(l.log)
	if err != nil {
		return nil, l.errorf("%w", err)
	}
	args := []string{"--config", l.config}
	for _, s := range l.sets {
		args = append(args, "--set="+s)
	}
	// Not CommandContext: Jaeger must outlive a cancelled run context long
	// enough to be stopped politely by [Process.Stop].
	cmd := exec.Command(bin, args...)
	if len(l.env) > 0 {
		cmd.Env = append(os.Environ(), l.env...)
	}
	cmd.Stdout = log
	cmd.Stderr = log
	// Its own process group: a Ctrl-C in the terminal reaches the demo, which
	// then stops Jaeger itself, in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stopWithParent(cmd.SysProcAttr)
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, l.errorf("start: %w", err)
	}
	p := &Process{cmd: cmd, done: make(chan struct{}), Log: l.log}
	go func() {
		p.err = cmd.Wait()
		log.Close()
		close(p.done)
	}()

	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if healthy(ctx, l.health) {
			return p, nil
		}
		select {
		case <-p.done:
			return nil, l.errorf("exited before it was healthy (%v); see %s", p.err, l.log)
		case <-ctx.Done():
			_ = p.Stop()
			return nil, l.errorf("%w", ctx.Err())
		case <-deadline.C:
			_ = p.Stop()
			return nil, l.errorf("not healthy after 30s; see %s", l.log)
		case <-tick.C:
		}
	}
}

// Stop asks Jaeger to shut down, kills it after 10s, and waits for it.
func (p *Process) Stop() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return nil
}
