# telltale: the two commands a new user needs are `make demo` and `make test`.
GO ?= go

.PHONY: demo test vet race fuzz-seeds bench e2e

demo: ## run the incident demo against a real Jaeger (see demo/README.md)
	$(MAKE) -C demo run

test: vet ## what CI runs: vet, race tests (with fuzz seed corpora) for the library and the demo
	$(GO) test -race -count=1 ./...
	cd demo && $(GO) test -race -count=1 ./...

vet:
	$(GO) vet ./...
	cd demo && $(GO) vet ./...

bench: ## side-by-side benchmarks, summarised with benchstat (see README)
	./scripts/bench.sh
