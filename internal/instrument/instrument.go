package instrument

import (
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// Counter creates a counter, or a no-op one if the meter refuses it.
func Counter(m metric.Meter, name, unit, description string) metric.Int64Counter {
	c, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(description))
	if err != nil {
		c, _ = noop.Meter{}.Int64Counter(name)
	}
	return c
}

// UpDownCounter creates an up-down counter, or a no-op one if the meter
// refuses it.
func UpDownCounter(m metric.Meter, name, unit, description string) metric.Int64UpDownCounter {
	c, err := m.Int64UpDownCounter(name, metric.WithUnit(unit), metric.WithDescription(description))
	if err != nil {
		c, _ = noop.Meter{}.Int64UpDownCounter(name)
	}
	return c
}
