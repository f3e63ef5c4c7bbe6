// Command demo reproduces the incident described in the README and its fix,
// side by side, and shows both in a real Jaeger.
//
// It builds (once) and starts Jaeger v2 on 127.0.0.1, starts three sets of
// three upstream services and three gateway processes — the incident's
// original code, the same with its first fix (time.After), and the same
// handlers guarded by telltale — drives the same load through each
// scenario, prints a report, and leaves Jaeger running with the URLs to
// open until Ctrl-C.
//
// Usage:
//
//	go run ./cmd/demo [-scenario all|name,name] [-rps 50] [-duration 5s | -requests N]
//	                  [-settle 3s] [-otlp URL] [-exit] [-json FILE]
//
// With -otlp, or with OTEL_EXPORTER_OTLP_ENDPOINT set, traces go to that
// collector and no Jaeger is started.
package main
