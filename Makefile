# enms-analytics — run `make help` for the targets.
SHELL := /bin/bash
GO ?= go
BIN := bin/enms-analytics
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_\/-]+:.*## / {printf "  \033[1m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## install what the project needs from the distribution (PostgreSQL server; nginx and Chromium for integration tests)
	@bash scripts/deps.sh

.PHONY: build
build: ## build bin/enms-analytics
	@$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/enms-analytics

.PHONY: run
run: deps build ## the demo: embedded PostgreSQL, demo plant, live simulation, API on :8001
	./$(BIN) dev

.PHONY: test
test: ## the whole suite against real PostgreSQL, with the race detector
	$(GO) test -race -count=1 ./...

.PHONY: test/short
test/short: ## the suite without -race (faster while editing)
	$(GO) test -count=1 ./...

.PHONY: bench
bench: build ## measure: prints a JSON report (see README, "Measured figures")
	@./$(BIN) bench

.PHONY: bench/quick
bench/quick: build ## the same report, small and under a minute (CI smoke)
	@./$(BIN) bench --quick

.PHONY: lint
lint: ## gofmt and go vet
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
