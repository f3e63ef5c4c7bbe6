package telemetry

import (
	"context"
	"fmt"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/telltale-go/telltale/vocab"
)

// AnomalyCounter reads the counters of telltale's sampler: how many traces
// of unsampled requests it exported because of an anomaly, and how many it
// refused over its budget. Give it to [Config.Anomalies].
type AnomalyCounter struct {
	reader   *sdkmetric.ManualReader
	provider *sdkmetric.MeterProvider
}

// NewAnomalyCounter returns a counter backed by a meter provider of its own,
// read on demand.
func NewAnomalyCounter() *AnomalyCounter {
	r := sdkmetric.NewManualReader()
	return &AnomalyCounter{reader: r, provider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))}
}

// AnomalyCounts are the sampler's running totals.
type AnomalyCounts struct {
	// Exported counts the anomaly traces admitted: their spans were
	// exported.
	Exported int64 `json:"exported"`
	// OverBudget counts the anomaly traces refused because the budget was
	// spent: nothing of them was exported.
	OverBudget int64 `json:"over_budget"`
}

// Counts returns the totals so far.
func (c *AnomalyCounter) Counts(ctx context.Context) (AnomalyCounts, error) {
	var rm metricdata.ResourceMetrics
	if err := c.reader.Collect(ctx, &rm); err != nil {
		return AnomalyCounts{}, fmt.Errorf("telemetry: anomaly counters: %w", err)
	}
	var n AnomalyCounts
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				continue
			}
			var total int64
			for _, dp := range sum.DataPoints {
				total += dp.Value
			}
			switch m.Name {
			case vocab.MetricAnomalyTracesExported:
				n.Exported += total
			case vocab.MetricAnomalyTracesDropped:
				n.OverBudget += total
			}
		}
	}
	return n, nil
}

// Shutdown stops the meter provider.
func (c *AnomalyCounter) Shutdown(ctx context.Context) error {
	return c.provider.Shutdown(ctx)
}
