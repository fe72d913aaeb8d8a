# orch: the two commands a newcomer needs are `make demo` and `make test`.
GO ?= go

.PHONY: build demo test unit check bench fuzz clean

build: ## build bin/orch
	$(GO) build -o bin/orch ./cmd/orch

demo: build ## the main job: deploy the files example, show it, undeploy it
	hack/demo.sh

test: check ## every test (vet, gofmt, unit, integration, fuzz seed corpus)
	$(GO) test -count=1 ./...

unit: ## fast tests only
	$(GO) test -short ./...

check: ## gofmt and go vet
	@bad=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$bad" ]; then echo "gofmt needed:"; echo "$$bad"; exit 1; fi
	$(GO) vet ./...

bench: ## benchmarks (not part of test)
	$(GO) test -run XXX -bench . -benchmem ./blueprints ./orchestrator

fuzz: ## fuzz the blueprint parser for a while (FUZZTIME, default 2m)
	$(GO) test ./blueprints -run XXX -fuzz FuzzParse -fuzztime $${FUZZTIME:-2m}

clean:
	rm -rf bin
