package jaeger

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The fixed loopback addresses of the fleet: demo/jaeger/collector.yaml and
// demo/jaeger/storage.yaml (or storage-badger.yaml). The collector tier
// takes the all-in-one's OTLP ports, so services export to it unchanged; the
// storage tier takes its query and health ports, so the query API and the UI
// stay at [QueryURL] and a healthy Jaeger at [HealthURL].
const (
	// CollectorOTLPHTTP is the collector tier's OTLP/HTTP receiver, where
	// services export: the all-in-one's [OTLPHTTP].
	CollectorOTLPHTTP = OTLPHTTP
	// CollectorHealthURL answers 200 once the collector tier is ready.
	CollectorHealthURL = "http://127.0.0.1:13134/status"
	// StorageOTLPGRPC is the storage tier's OTLP/gRPC receiver, where the
	// collector tier forwards the traces it keeps.
	StorageOTLPGRPC = "127.0.0.1:14317"
	// StorageOTLPHTTP is the storage tier's OTLP/HTTP receiver: what is sent
	// there is stored as it is, without tail sampling.
	StorageOTLPHTTP = "http://127.0.0.1:14318"
	// StorageHealthURL answers 200 once the storage tier is ready: the
	// all-in-one's [HealthURL].
	StorageHealthURL = HealthURL
)

// The configs of the fleet's tiers, in [Dir].
const (
	collectorConfig     = "collector.yaml"
	storageConfig       = "storage.yaml"
	badgerStorageConfig = "storage-badger.yaml"
	// badgerDirEnv names the directory storage-badger.yaml keeps its data in.
	badgerDirEnv = "TELLTALE_BADGER_DIR"
)

// fleetAddrs are the host:port addresses a fleet listens on.
type fleetAddrs struct {
	collectorGRPC, collectorHTTP, collectorHealth string
	storageGRPC, storageHTTP, storageHealth       string
	queryHTTP, queryGRPC                          string
}

// defaultFleetAddrs are the addresses written in the configs.
var defaultFleetAddrs = fleetAddrs{
	collectorGRPC: "127.0.0.1:4317", collectorHTTP: "127.0.0.1:4318", collectorHealth: "127.0.0.1:13134",
	storageGRPC: "127.0.0.1:14317", storageHTTP: "127.0.0.1:14318", storageHealth: "127.0.0.1:13133",
	queryHTTP: "127.0.0.1:16686", queryGRPC: "127.0.0.1:16685",
}

func (a fleetAddrs) collector() []string {
	return []string{a.collectorGRPC, a.collectorHTTP, a.collectorHealth}
}

func (a fleetAddrs) storage() []string {
	return []string{a.storageGRPC, a.storageHTTP, a.queryHTTP, a.queryGRPC, a.storageHealth}
}

// collectorSets are the --set flags that move the collector tier from the
// default addresses to a's; none for the defaults, so the config's own
// addresses are the ones used.
func (a fleetAddrs) collectorSets() []string {
	if a == defaultFleetAddrs {
		return nil
	}
	return []string{
		"receivers.otlp.protocols.grpc.endpoint=" + a.collectorGRPC,
		"receivers.otlp.protocols.http.endpoint=" + a.collectorHTTP,
		"extensions.healthcheckv2.http.endpoint=" + a.collectorHealth,
		"exporters.otlp.endpoint=" + a.storageGRPC,
	}
}

// storageSets are collectorSets for the storage tier.
func (a fleetAddrs) storageSets() []string {
	if a == defaultFleetAddrs {
		return nil
	}
	return []string{
		"receivers.otlp.protocols.grpc.endpoint=" + a.storageGRPC,
		"receivers.otlp.protocols.http.endpoint=" + a.storageHTTP,
		"extensions.healthcheckv2.http.endpoint=" + a.storageHealth,
		"extensions.jaeger_query.http.endpoint=" + a.queryHTTP,
		"extensions.jaeger_query.grpc.endpoint=" + a.queryGRPC,
	}
}

// fleetConfig is what the [FleetOption]s of [StartFleet] set.
type fleetConfig struct {
	badgerDir     string
	addrs         fleetAddrs
	collectorSets []string
}

// FleetOption configures [StartFleet].
type FleetOption func(*fleetConfig)

// WithBadger runs the storage tier with storage-badger.yaml, which keeps the
// traces on disk in dir (created if needed) across restarts, instead of
// storage.yaml's memory.
func WithBadger(dir string) FleetOption {
	return func(c *fleetConfig) { c.badgerDir = dir }
}

// withAddrs runs the fleet on other addresses than the configs': tests use
// free ports, so that they collide neither with each other nor with a demo
// or e2e Jaeger on the usual ones.
func withAddrs(a fleetAddrs) FleetOption {
	return func(c *fleetConfig) { c.addrs = a }
}

// withCollectorSets adds --set overrides of collector.yaml, as "key=value":
// tests shrink the tail sampler's buffer with it.
func withCollectorSets(sets ...string) FleetOption {
	return func(c *fleetConfig) { c.collectorSets = append(c.collectorSets, sets...) }
}

// Fleet is the two-tier Jaeger started by [StartFleet]: a collector tier that
// keeps whole traces by tail sampling, in front of a storage tier that
// stores them and serves the query API.
type Fleet struct {
	// Collector is the collector tier: OTLP receivers and tail sampling.
	Collector *Process
	// Storage is the storage tier: storage and the query API.
	Storage *Process
	// OTLPHTTP is where services export: [CollectorOTLPHTTP].
	OTLPHTTP string
	// QueryURL is the storage tier's query service: [QueryURL].
	QueryURL string
}

// FleetHealthy reports whether a fleet answers on its default addresses:
// the collector tier on [CollectorHealthURL] and the storage tier on
// [StorageHealthURL].
func FleetHealthy(ctx context.Context) bool {
	return healthy(ctx, CollectorHealthURL) && healthy(ctx, StorageHealthURL)
}

// StartFleet runs the binary of dir as the fleet: the storage tier
// (storage.yaml, or storage-badger.yaml with [WithBadger]) and, once it is
// healthy, the collector tier (collector.yaml), in front of it. Their logs
// go to jaeger-storage.log and jaeger-collector.log in logDir. Each tier is
// given at most 30s to become healthy. It returns [ErrPortsTaken] at once,
// naming them, if any of the fleet's ports is already in use.
func StartFleet(ctx context.Context, dir, logDir string, opts ...FleetOption) (*Fleet, error) {
	cfg := fleetConfig{addrs: defaultFleetAddrs}
	for _, o := range opts {
		o(&cfg)
	}
	a := cfg.addrs
	bin := Binary(dir)
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("jaeger: binary not built: %w", err)
	}
	if taken := takenAddrs(append(a.collector(), a.storage()...)); len(taken) > 0 {
		return nil, fmt.Errorf("%w: %s already in use; the fleet needs %s (collector tier) and %s (storage tier). An all-in-one Jaeger holds most of them: stop it first", ErrPortsTaken, strings.Join(taken, ", "), strings.Join(a.collector(), ", "), strings.Join(a.storage(), ", "))
	}

	storage := launch{
		name:   "storage tier",
		config: filepath.Join(dir, storageConfig),
		sets:   a.storageSets(),
		health: "http://" + a.storageHealth + "/status",
		log:    filepath.Join(logDir, "jaeger-storage.log"),
	}
	if cfg.badgerDir != "" {
		storage.config = filepath.Join(dir, badgerStorageConfig)
		storage.env = []string{badgerDirEnv + "=" + cfg.badgerDir}
	}
	sp, err := storage.start(ctx, bin)
	if err != nil {
		return nil, err
	}
	cp, err := launch{
		name:   "collector tier",
		config: filepath.Join(dir, collectorConfig),
		sets:   append(a.collectorSets(), cfg.collectorSets...),
		health: "http://" + a.collectorHealth + "/status",
		log:    filepath.Join(logDir, "jaeger-collector.log"),
	}.start(ctx, bin)
	if err != nil {
		_ = sp.Stop()
		return nil, err
	}
	return &Fleet{
		Collector: cp,
		Storage:   sp,
		OTLPHTTP:  "http://" + a.collectorHTTP,
		QueryURL:  "http://" + a.queryHTTP,
	}, nil
}

// Stop stops the collector tier, which forwards the traces it has decided to
// keep, then the storage tier. Traces still waiting for their decision are
// lost.
func (f *Fleet) Stop() error {
	return errors.Join(f.Collector.Stop(), f.Storage.Stop())
}
