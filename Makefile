# geodl-pipeline: every target installs first, so `make test` alone works on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= config/config.yaml
CORES ?= all
PORT ?= 5000
HOST ?= 127.0.0.1
MLFLOW_STORE ?= sqlite:///results/mlflow.db
SERVER_STORE ?= sqlite:///results/mlflow-server.db
SERVER_ARTIFACTS ?= results/mlartifacts-server

.PHONY: install test lint pytest run report ui server clean lock

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

lint: install
	$(BIN)/ruff check src tests workflow bench
	$(BIN)/ruff format --check src tests workflow bench
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint --configfile config/test.yaml

pytest: install
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint pytest

# After a crash (kill -9, out of memory) the rerun releases the lock the dead run left.
run: install
	$(BIN)/python -m pipeline.locks $(CONFIG)
	$(BIN)/snakemake --cores $(CORES) --configfile $(CONFIG)

report: install
	$(BIN)/snakemake --cores $(CORES) --configfile $(CONFIG) --report results/report.html

# Whoever reaches HOST:PORT sees every run: beyond loopback, only with a login.
LOOPBACK = $(filter 127.0.0.1 localhost ::1,$(HOST))
NO_LOGIN = HOST=$(HOST) would serve every run to the network without a login

ui: install
	$(if $(LOOPBACK),,$(error $(NO_LOGIN); use `make server` (docs/tracking.md)))
	@echo "runs: pick 'Model training' (top left) or open http://$(HOST):$(PORT)/#/experiments/<id>?workflowType=machine_learning"
	$(BIN)/mlflow ui --backend-store-uri $(MLFLOW_STORE) --host $(HOST) --port $(PORT)

# A shared tracking server: jobs log over HTTP (MLFLOW_TRACKING_URI=http://HOST:PORT).
# SERVER_STORE may be postgresql://... (see docs/cluster.md); HOST=0.0.0.0 makes it
# reachable from compute nodes, and then it asks for a login: MLflow's basic-auth app,
# its users in MLFLOW_AUTH_CONFIG_PATH's database (docs/tracking.md). AUTH=basic-auth
# turns the login on for a loopback server too.
AUTH ?= $(if $(LOOPBACK),none,basic-auth)
server: install
	$(if $(or $(LOOPBACK),$(filter basic-auth,$(AUTH))),,$(error $(NO_LOGIN): leave AUTH unset))
	$(BIN)/mlflow server --backend-store-uri $(SERVER_STORE) \
		--artifacts-destination $(SERVER_ARTIFACTS) --host $(HOST) --port $(PORT) \
		$(if $(filter basic-auth,$(AUTH)),--app-name basic-auth)

clean:
	rm -rf results .snakemake/incomplete .snakemake/metadata

lock: install
	{ grep '^#' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | sed 's/+cpu$$//'; } > constraints.new
	mv constraints.new constraints.txt
