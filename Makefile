# Arus developer commands. `make dev` and `make test` work on a fresh machine: they create the
# virtual environment on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install dev test lint typecheck pytest terraform-check bench bundle clean

$(STAMP): pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' -e './clients/python[shadow,kafka]'
	touch $(STAMP)

install: $(STAMP)

## The one-command local ledger: embedded PostgreSQL, migrations, a demo ledger, :8080.
dev: $(STAMP)
	$(BIN)/arus dev

## Every gate: lint, format, types, Terraform checks, then the whole test suite.
test: lint typecheck terraform-check pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy shared/arus clients/python/arus_client

pytest: $(STAMP)
	$(BIN)/pytest

## terraform fmt and checkov (in its own venv); init/validate/plan need provider downloads.
terraform-check:
	TF_CLI_CONFIG_FILE=/dev/null terraform fmt -check -recursive terraform
	bash tools/checkov.sh

## The bench: engine, reference shape, HTTP and batches side by side (build/bench/, needs wrk),
## then the locust brackets: throughput ceiling and first failed bracket (build/loadtest/).
## BEFORE=REV (e.g. make bench BEFORE=cd80aea) also runs the engine and HTTP rows of REV from a
## git worktree, alternated with this checkout's, and adds the before/after table.
BEFORE ?=
bench: $(STAMP)
	$(BIN)/python loadtest/bench.py --out build/bench $(if $(BEFORE),--before $(BEFORE))
	$(BIN)/python loadtest/bracket.py --out build/loadtest

## Each function's deployable source and reproducible zip in build/bundles/.
bundle: $(STAMP)
	$(BIN)/arus bundle --out build/bundles

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist
