# telltale: the two commands a new user needs are `make demo` and `make test`.
GO ?= go
# Flags of the compat harness, e.g. make compat COMPAT_ARGS='-suites httputil -race'
COMPAT_ARGS ?=

.PHONY: demo test test-deps vet unit e2e soak bench compat

demo: ## build and start Jaeger, the upstreams and the three gateways; run the scenarios; print the report
	$(MAKE) -C demo run

test: test-deps vet unit e2e soak compat ## everything CI runs

test-deps: ## Chromium for the inspector page test (Debian package)
	./scripts/test-deps.sh

# The oldest Go the library declares it builds with (go.mod's go line).
MIN_GO := $(shell awk '/^go /{print $$2; exit}' go.mod)

vet: ## gofmt, go vet, and go vet again with the oldest Go that go.mod declares (fetched from the module proxy once)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	cd demo && $(GO) vet ./...
	GOTOOLCHAIN=go$(MIN_GO) $(GO) vet ./...

unit: ## race tests of the library and the demo, fuzz seed corpora included
	$(GO) test -race -count=1 -timeout 10m ./...
	cd demo && $(GO) test -race -count=1 -timeout 10m $$($(GO) list ./... | grep -v /e2e)

e2e: ## the demo against a real Jaeger (builds Jaeger on first use: ~4 min cold)
	$(MAKE) -C demo e2e

soak: ## 30 s of load on the guarded gateway: goroutines, connections and heap stay flat, each leak reported once
	$(MAKE) -C demo soak

bench: ## side-by-side benchmarks summarised with benchstat (see README)
	./scripts/bench.sh

compat: ## retryablehttp's, resty's and httputil's own test suites, plain and with their transports wrapped by telltale; fails when a test passes plain only (compat/README.md)
	cd compat && $(GO) vet ./... && $(GO) test -count=1 ./...
	cd compat && $(GO) run ./cmd/compat $(COMPAT_ARGS)
