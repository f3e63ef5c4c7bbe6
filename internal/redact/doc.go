// Package redact writes URLs the way telltale records them everywhere —
// span attributes, events, logs, the inspector page, exception messages —
// without credentials or query values: an observability tool must not become
// the place where tokens leak.
package redact
