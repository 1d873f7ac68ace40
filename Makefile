# The commands people type. `make demo` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= data/01_raw/demo
DEMO_PATIENTS ?= 3000
DEMO_SEED ?= 0
# conf/real_demo/globals.yml reads the two folders of the real demo here
REAL_DEMO_DIR := data/01_raw/real-demo
MIMIC_DEMO_DIR ?=
PYTEST_ARGS ?=
ARGS ?=

# Nothing leaves the machine: Kedro and MLflow telemetry off; tool caches stay in the project.
# `import mindkd` sets the same three in every process (mindkd.telemetry); they are here for what
# never imports it: `mlflow server` (make mlflow-ui) and any tool these commands start.
export KEDRO_DISABLE_TELEMETRY := true
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export KEDRO_LOGGING_CONFIG := $(CURDIR)/conf/logging.yml
export XDG_CONFIG_HOME := $(CURDIR)/.cache/config
export XDG_CACHE_HOME := $(CURDIR)/.cache/cache
export MPLCONFIGDIR := $(CURDIR)/.cache/matplotlib
export PYTHONUNBUFFERED := 1

.PHONY: setup setup-test demo demo-data real-demo avdigits tune seeds results test test-fast lint format viz mlflow-ui compare bench clean-data help

help:
	@echo "make demo      generate the demo data (if absent), run the whole pipeline, register the best students"
	@echo "make real-demo the same on the real MIMIC-IV demo (MIMIC_DEMO_DIR=... or a PhysioNet download)"
	@echo "make avdigits  the AV-digits benchmark (spoken + handwritten digits; FSDD_DIR=... or a clone)"
	@echo "make tune      search every method's settings on val (Optuna; after make demo)"
	@echo "make seeds     the distill stage again for SEEDS (default 1 2 3 4), reusing the cache"
	@echo "make results   docs/results.md and README's results from the tracked seed runs"
	@echo "make test      run the test suite"
	@echo "make lint      ruff check + format check"
	@echo "make viz       kedro-viz on http://127.0.0.1:4141"
	@echo "make mlflow-ui MLflow UI on http://127.0.0.1:5000"
	@echo "make compare   the latest distill runs side by side (ARGS=\"--task ihm --limit 5\")"
	@echo "make bench     the performance scripts in benchmarks/"

# One-time set-up: a virtual environment with the project installed editable; the commands that
# need the test tools (pytest, ruff, mypy, ...) add its test extras (the demo does not wait for them).
# Each re-runs only when pyproject.toml changes.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(BIN)/.installed-test: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

setup: $(BIN)/.installed

setup-test: $(BIN)/.installed-test

$(DEMO_DIR)/_truth/manifest.json: | setup
	$(BIN)/python -m mindkd.demo $(DEMO_DIR) --patients $(DEMO_PATIENTS) --seed $(DEMO_SEED)

demo-data: $(DEMO_DIR)/_truth/manifest.json

demo: setup demo-data
	$(BIN)/kedro run
	$(BIN)/python -m mindkd.tracking register --task ihm
	$(BIN)/python -m mindkd.tracking register --task pheno
	$(BIN)/python -m mindkd.tracking register --task los

# AV-digits (docs/avdigits.md): spoken digits (FSDD, CC BY-SA 4.0) + scikit-learn's handwritten
# digits through the same teachers and distill stages. FSDD_DIR: a local copy of the dataset
# (linked, not copied); without it the recordings are cloned from GitHub once.
FSDD_DIR ?=
FSDD_LINK := data/01_raw/fsdd/recordings
FSDD_REPO := https://github.com/Jakobovski/free-spoken-digit-dataset
$(FSDD_LINK):
	mkdir -p $(dir $(FSDD_LINK))
	$(if $(FSDD_DIR),ln -sfn $(abspath $(FSDD_DIR))/recordings $(FSDD_LINK),git clone --depth 1 $(FSDD_REPO) data/01_raw/fsdd/clone && ln -sfn clone/recordings $(FSDD_LINK))

avdigits: setup $(FSDD_LINK)
	$(BIN)/kedro run --pipelines avdigits
	$(BIN)/python -m mindkd.tracking register --task avdigits

# The real, open MIMIC-IV demo (100 patients) with synthetic X-rays for its subjects: MIMIC_DEMO_DIR
# when set (linked, not copied), else a download from PhysioNet (no credentials). Its own data root
# and MLflow store (conf/real_demo); docs/real-mimic-demo.md says what the numbers mean.
real-demo: setup
	$(BIN)/python -m mindkd.demo.physionet $(REAL_DEMO_DIR) $(if $(MIMIC_DEMO_DIR),--mimic-iv $(MIMIC_DEMO_DIR))
	$(BIN)/kedro run --env real_demo
	$(BIN)/python -m mindkd.tracking --env real_demo register --task ihm --metric best/val/loss
	$(BIN)/python -m mindkd.tracking --env real_demo register --task pheno --metric best/val/loss
	$(BIN)/python -m mindkd.tracking --env real_demo register --task los --metric best/val/loss

# The results pages (docs/results.md): after `make demo` and `make avdigits` (seed 0), `make seeds`
# adds the student seeds SEEDS from the same logit caches; `make results` rewrites the marked blocks
# of docs/results.md and README.md from the MLflow runs (every task needs MIN_SEEDS seeds).
# `make tune` is the val-split search whose values conf/base holds.
SEEDS ?= 1 2
MIN_SEEDS ?= 3
tune: setup
	$(BIN)/kedro run --pipelines tune

seeds: setup
	for s in $(SEEDS); do \
		$(BIN)/kedro run --pipelines distill --params "ihm.distill.fit.seed=$$s,pheno.distill.fit.seed=$$s,los.distill.fit.seed=$$s" || exit 1; \
		$(BIN)/kedro run --pipelines avdigits --namespaces avdigits.distill --params "avdigits.distill.fit.seed=$$s" || exit 1; \
	done

results: setup
	$(BIN)/python -m mindkd.tracking results --min-seeds $(MIN_SEEDS) --write docs/results.md README.md

test: setup-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: setup-test
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: setup-test
	$(BIN)/ruff check src tests benchmarks scripts notebooks
	$(BIN)/ruff format --check src tests benchmarks scripts notebooks

format: setup-test
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

viz: setup
	$(BIN)/kedro viz run --host 127.0.0.1 --port 4141 --no-browser

mlflow-ui: setup
	$(BIN)/mlflow server --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:///mlflow.db

# e.g. make compare ARGS="--task ihm --sort full.routed.auroc --models mind,no_kd"
compare: setup
	$(BIN)/python -m mindkd.tracking compare $(ARGS)

bench: setup
	$(BIN)/python benchmarks/ehr_ingest.py
	$(BIN)/python benchmarks/cxr_decode.py

clean-data:
	find data -mindepth 2 -not -name .gitkeep -delete 2>/dev/null || true
