# Shipway — every target documents itself: `make help`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
USECASE ?= hotel_rates
export SHIPWAY_USECASE := $(USECASE)
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.DEFAULT_GOAL := help
.PHONY: help venv demo test test-unit lint format data features train serve predict-batch batch-run compile tools chart-sync chart-lint image bench bench-training bench-serving bench-batch bench-drift bench-load bench-load-smoke audit clean

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	$(BIN)/pip check
	@touch $(STAMP)

venv: $(STAMP) ## Create or refresh the local virtualenv (.venv) from pyproject.toml + requirements.lock

demo: $(STAMP) ## Run the main job end to end on embedded defaults (USECASE=hotel_rates)
	$(BIN)/shipway demo --usecase $(USECASE)

test: $(STAMP) ## Run every test (unit, integration, e2e); CI=true turns missing-server skips into failures
	$(BIN)/pytest tests/unit tests/integration tests/e2e  # unit first: pure, before any server or exported store

test-unit: $(STAMP) ## Run the fast unit tests only
	$(BIN)/pytest tests/unit

lint: $(STAMP) ## Run ruff, mypy and the import-layer contract (lint-imports)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	tools/chart-sync.sh --check
	$(BIN)/mypy shipway pipelines services monitoring feature_repo benchmarks
	$(BIN)/lint-imports

format: $(STAMP) ## Format the code with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

data: $(STAMP) ## Reproduce the DVC data stages (ingest -> validate -> features); never trains
	$(BIN)/dvc repro features

features: $(STAMP) ## Apply the Feast definitions and materialize the online store
	$(BIN)/shipway features apply
	$(BIN)/shipway features materialize --usecase $(USECASE)

train: $(STAMP) ## Train through the KFP pipeline on kfp.local and register in MLflow (USECASE=...)
	$(BIN)/shipway train --usecase $(USECASE)

serve: $(STAMP) ## Run the prediction service (bentoml serve) for USECASE on port 3000
	$(BIN)/shipway serve --usecase $(USECASE)

predict-batch: $(STAMP) ## Score a CSV/Parquet file: make predict-batch IN=in.parquet OUT=out.parquet
	$(BIN)/shipway predict batch --usecase $(USECASE) -i $(IN) -o $(OUT)

SHARDS ?= 4
batch-run: $(STAMP) ## The KFP batch pipeline on kfp.local: make batch-run IN=folder-or-file OUT=folder [SHARDS=4]
	$(BIN)/shipway batch run --usecase $(USECASE) -i $(IN) -o $(OUT) --shards $(SHARDS)

compile: $(STAMP) ## Compile the KFP pipelines' YAML (training, batch; committed, golden-tested) and sync the chart's copy
	$(BIN)/shipway pipeline compile
	tools/chart-sync.sh

tools: ## Install helm, kubectl, checkov, kubernetes-validate, hadolint into .tools/ (idempotent)
	tools/install-tools.sh

chart-sync: ## Copy compiled pipeline, Prometheus rules and Grafana dashboards into charts/shipway/files/
	tools/chart-sync.sh

chart-lint: $(STAMP) tools ## Chart + Dockerfile checks: helm lint, kubernetes-validate, checkov, schema, hadolint
	$(BIN)/pytest tests/integration/test_chart.py tests/integration/test_dockerfiles.py

image: ## Build the Shipway image (needs a container engine; none exists on the dev machines)
	docker build -f docker/Dockerfile -t ghcr.io/shipway/shipway:0.1.0 .

WRK := command -v wrk >/dev/null || apt-get install -y wrk  # the C load generator (Debian package)

bench: $(STAMP) ## Every benchmark against its same-run baseline, then one table of ratios (exit 1 on a missed goal)
	$(BIN)/python -m benchmarks.training
	@$(WRK)
	SHIPWAY_BENCH_BATCH=0 $(BIN)/python -m benchmarks.serving
	$(BIN)/python -m benchmarks.batch
	$(BIN)/python -m benchmarks.drift
	$(BIN)/python -m benchmarks.report

bench-training: $(STAMP) ## kfp.local vs in-process pipeline; raw data -> champion
	$(BIN)/python -m benchmarks.training

bench-serving: $(STAMP) ## /predict vs the bare floor (wrk, A/B rounds, 1+2 workers, 1+16 conns)
	@$(WRK)
	SHIPWAY_BENCH_BATCH=0 $(BIN)/python -m benchmarks.serving
	$(BIN)/python -m benchmarks.report serving

BATCH_ROWS ?= 10000000
bench-batch: $(STAMP) ## Batch scoring of BATCH_ROWS (10M) vs the bare floor; kfp.local pipeline 2 shards vs 1
	SHIPWAY_BENCH_BATCH_ROWS=$(BATCH_ROWS) $(BIN)/python -m benchmarks.batch
	$(BIN)/python -m benchmarks.report batch

bench-drift: $(STAMP) ## drift on 1M x 20 and 10M x 20 vs the numpy floor on the same rows (+ peak RSS)
	$(BIN)/python -m benchmarks.drift

LOAD_MINUTES ?= 5
LOAD_RATE ?= 1500
bench-load: $(STAMP) ## wrk at a constant LOAD_RATE (1500 req/s) of the mix for LOAD_MINUTES (5); exit 1 if not sustained
	@$(WRK)
	LOAD_MINUTES=$(LOAD_MINUTES) LOAD_RATE=$(LOAD_RATE) $(BIN)/python -m benchmarks.load

bench-load-smoke: $(STAMP) ## Check the load harness in seconds (50 req/s, 15 s); records nothing
	@$(WRK)
	LOAD_SMOKE=1 $(BIN)/python -m benchmarks.load

audit: $(STAMP) ## Dependency vulnerability audit of requirements.lock (pip-audit; fails if any pin cannot be checked)
	$(BIN)/pip-audit --strict --no-deps --disable-pip --progress-spinner off -r requirements.lock

clean: ## Remove local runtime state (.shipway/), keeping the virtualenv and DVC cache
	rm -rf .shipway
