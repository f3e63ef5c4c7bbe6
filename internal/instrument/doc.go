// Package instrument creates telltale's metric instruments so that a meter
// that refuses one never stops a request: it is replaced by a no-op.
package instrument
