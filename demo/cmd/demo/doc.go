// Command demo reproduces the incident described in the README and its fix,
// side by side, and shows both in a real Jaeger.
//
// It builds (once) and starts Jaeger v2 on 127.0.0.1, starts three sets of
// three upstream services (telltale services themselves) and three gateway
// processes — the incident's original code, the same with its first fix
// (time.After), and the same handlers guarded by telltale — all sampling
// 1% of traces at the head, drives the same load through each scenario,
// looks up in Jaeger which requests' traces were kept, prints a report,
// and leaves Jaeger running with the URLs to open until Ctrl-C. With
// -fleet, it starts a two-tier Jaeger instead, whose collector tier
// samples at the tail, runs every service at 100% head sampling, and
// reports what the tail kept of each service's traces.
//
// Usage:
//
//	go run ./cmd/demo [-scenario all|name,name] [-gateways naive,first-fix,guarded]
//	                  [-rps 50] [-duration 5s | -requests N] [-settle 3s]
//	                  [-sample 0.01] [-anomaly-budget 200] [-one-by-one huge]
//	                  [-echo v5|v4] [-fleet] [-otlp URL] [-exit] [-json FILE] [-logs DIR]
//
// With -otlp, or with OTEL_EXPORTER_OTLP_ENDPOINT set, traces go to that
// collector and no Jaeger is started.
package main
