// Package upstream runs the internal services the demo gateways call: real
// HTTP servers on 127.0.0.1 whose behaviour can be switched at run time to
// each failure the incident went through (slow, dead, black hole, trickling
// or huge bodies), so every gateway meets the same faults on real sockets.
package upstream
