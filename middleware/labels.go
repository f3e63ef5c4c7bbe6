package middleware

import "github.com/telltale-go/telltale/vocab"

// The runtime/pprof labels Leaks puts on the handler's goroutine, which the
// goroutines it starts inherit. The route and trace id are for profiles
// (go tool pprof -tagfocus); the request and monitor ids are how a
// GoroutineMonitor tells whose goroutine it is.
const (
	labelRoute   = vocab.LabelRoute
	labelTraceID = vocab.LabelTraceID
	labelRequest = "telltale.request"
	labelMonitor = "telltale.monitor"
)
