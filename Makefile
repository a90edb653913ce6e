# Resilient Analytics — `make help` lists the targets.
SHELL := /bin/bash
MODULES := pkg services/api services/aggregator deploy/healthchecks deploy/compose deploy/bench
GO ?= go
GOFLAGS_BUILD := -trimpath -ldflags='-s -w'
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
TEST_FLAGS ?= -race -count=1 -timeout 8m

.PHONY: help build test compose-test run lint bench bench-go clean fuzz chaos

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

build: ## build static bin/api, bin/aggregator, bin/healthcheck
	@mkdir -p bin
	cd services/api && CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o ../../bin/api ./cmd/api
	cd services/aggregator && CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o ../../bin/aggregator ./cmd/aggregator
	cd deploy/healthchecks && CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o ../../bin/healthcheck .

test: ## run every test with -race against a real redis-server each package starts
	@set -e; for m in $(MODULES); do echo "== $$m"; (cd $$m && $(GO) test $(TEST_FLAGS) ./...); done

compose-test: ## only the container tests: the compose files under a real Docker engine (deploy/ci/docker.sh sets one up)
	cd deploy/compose && REQUIRE_DOCKER=$${REQUIRE_DOCKER:-1} $(GO) test -count=1 -timeout 15m -v ./containers/...

run: build ## run api + aggregator against REDIS_URL (starts a Redis when none answers)
	cd deploy/compose && $(GO) build -o ../../bin/devrun ./devrun
	@# exec: devrun gets the terminal's Ctrl-C itself and exits 0 after a clean stop
	@exec bin/devrun --bin bin

lint: ## gofmt check, go mod tidy check, go vet and staticcheck on every module
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) mod tidy -diff) || { echo "go mod tidy needed in $$m"; exit 1; }; done
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./...); done

bench: build ## measure ingest, summary, drain against the HTTP and Redis limits (writes docs/benchmarks.md), then Go benchmarks
	cd deploy/bench && $(GO) run . -bin ../../bin -docs ../../docs -aggregator-module ../../services/aggregator
	$(MAKE) bench-go

bench-go: ## Go testing.B benchmarks of the hot paths (decoder, limiter+append, apply, cache)
	@set -e; for m in pkg services/api services/aggregator; do (cd $$m && $(GO) test -run '^$$' -bench . -benchmem -benchtime 1s ./...); done

fuzz: ## run each fuzz target for 30s
	cd pkg && $(GO) test -run '^$$' -fuzz 'FuzzDecode$$' -fuzztime 30s ./metric
	cd pkg && $(GO) test -run '^$$' -fuzz 'FuzzScanSimpleAgreesWithGeneralPath$$' -fuzztime 30s ./metric
	cd pkg && $(GO) test -run '^$$' -fuzz 'FuzzSplitSimpleArrayAgreesWithJSON$$' -fuzztime 30s ./metric
	cd pkg && $(GO) test -run '^$$' -fuzz 'FuzzParseTimeAgreesWithTimeParse$$' -fuzztime 30s ./metric
	cd services/api && $(GO) test -run '^$$' -fuzz 'FuzzParse$$' -fuzztime 30s ./internal/window
	cd services/api && $(GO) test -run '^$$' -fuzz 'FuzzAccessLogPath$$' -fuzztime 30s ./internal/middleware
	cd services/api && $(GO) test -run '^$$' -fuzz 'FuzzParseEntry$$' -fuzztime 30s ./internal/apikey
	cd services/api && $(GO) test -run '^$$' -fuzz 'FuzzParse$$' -fuzztime 30s ./internal/idempotency

chaos: ## 60s, 64 clients retrying with Idempotency-Key while an aggregator and Redis are killed and Redis frozen: exact totals
	cd deploy/compose && CHAOS_DURATION=60s CHAOS_CLIENTS=64 $(GO) test -count=1 -timeout 10m -run '^TestChaosExactlyOnce$$' -v .

clean: ## remove build output
	rm -rf bin
