package echov5

import (
	"github.com/labstack/echo/v5"

	"github.com/telltale-go/telltale/internal/server"
	"github.com/telltale-go/telltale/transport"
)

// InspectorConfig configures [Inspector].
type InspectorConfig struct {
	// Transports are the telltale transports whose bodies and leaks are
	// shown, in this order.
	Transports []*transport.Transport

	// Goroutines, if set, is the monitor whose orphaned goroutines are
	// shown. Viewing the page asks it for a check, which it runs only if
	// the last one is older than its Interval.
	Goroutines *GoroutineMonitor

	// MaxItems caps each list (open bodies, recent leaks, orphans) per
	// transport. Zero means 100.
	MaxItems int

	// TraceURL, if set, makes every trace id on the page a link into your
	// trace UI: a URL in which {trace_id} stands for the id, such as
	// "http://127.0.0.1:16686/trace/{trace_id}" for Jaeger.
	TraceURL string
}

// Inspection is what [Inspector] shows, and its JSON form.
type Inspection = server.Inspection

// TransportInspection is one transport's part of an [Inspection].
type TransportInspection = server.TransportInspection

// GoroutineInspection is the goroutine monitor's part of an [Inspection].
type GoroutineInspection = server.GoroutineInspection

// Inspector returns a read-only handler that shows what telltale sees now:
// for each transport its counters, its open bodies (age, call site, upstream
// host, trace id) and its recent leaks, and the monitor's orphaned
// goroutines. It answers JSON when asked with Accept: application/json or
// ?format=json, and a small HTML page otherwise. Mount it where only
// operators reach it, like net/http/pprof:
//
//	e.GET("/debug/telltale", ttmw.Inspector(ttmw.InspectorConfig{
//		Transports: []*transport.Transport{tr},
//		Goroutines: monitor,
//	}))
//
// It shows no secrets: URLs come redacted from the transport (no
// credentials, no query values) and no header is shown. It does show call
// sites and stacks, which is the point. It panics if the config is invalid;
// use [InspectorConfig.ToHandler] to get the error instead.
func Inspector(cfg InspectorConfig) echo.HandlerFunc {
	return server.Must(cfg.ToHandler())
}

// ToHandler validates the config and returns the [Inspector] handler.
func (cfg InspectorConfig) ToHandler() (echo.HandlerFunc, error) {
	h, err := server.InspectorConfig(cfg).Handler()
	if err != nil {
		return nil, wrapErr(err)
	}
	return echo.WrapHandler(h), nil
}
