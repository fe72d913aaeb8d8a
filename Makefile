# orch: the two commands a newcomer needs are `make demo` and `make test`.
GO ?= go

.PHONY: build demo demo-files test unit check bench cost fuzz clean env-up env-down env-status

build: ## build bin/orch
	$(GO) build -o bin/orch ./cmd/orch

demo: ## the main job: cloud-burst bookings into the peer cluster on high rps, and back
	hack/demo.sh

demo-files: build ## no cluster needed: deploy the files example, show it, undeploy it
	hack/demo-files.sh

test: check ## every test: brings the environment up (and down, if it started it)
	hack/test.sh

unit: ## unit tests only, no environment needed
	$(GO) test -short ./...

check: ## gofmt and go vet, both modules
	@bad=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$bad" ]; then echo "gofmt needed:"; echo "$$bad"; exit 1; fi
	$(GO) vet ./...
	cd hack/testenv && $(GO) vet ./...

env-up: ## start RabbitMQ, two Kubernetes control planes and sshd (idempotent)
	cd hack/testenv && $(GO) run ./cmd/testenv up

env-down: ## stop everything env-up started
	cd hack/testenv && $(GO) run ./cmd/testenv down

env-status: ## exit 0 when the environment runs; prints its env file
	cd hack/testenv && $(GO) run ./cmd/testenv status

bench: ## benchmarks (not part of test; the broker and kubernetes ones need make env-up)
	$(GO) test -run XXX -bench . -benchmem ./blueprints ./policies ./orchestrator ./workflows ./plugins/kubernetes

cost: ## what a metric costs the pipeline in instructions and cache misses (callgrind; REV=commit to compare; needs valgrind)
	hack/pipeline-cost.sh $(REV)

fuzz: ## fuzz the blueprint parser, the metric decoder and the window reductions (FUZZTIME each, default 10m)
	hack/fuzz.sh

clean:
	rm -rf bin
