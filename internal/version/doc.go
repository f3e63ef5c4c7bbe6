// Package version is telltale's version and the names of its
// instrumentation scopes, recorded on its tracers and meters, so that a
// backend can tell which telltale produced a span or a metric.
package version
