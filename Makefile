# Arus developer commands. `make dev` and `make test` work on a fresh machine: they create the
# virtual environment on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# The functions' locked dependency tree: every package pinned with its sha256 hashes, compiled
# from pyproject.toml's [project].dependencies for the python311 runtime of Cloud Run functions
# (terraform/modules/functions) on Linux x86_64. Each bundle's requirements.txt is this file.
LOCK := locks/functions.txt
LOCK_PYTHON := 3.11
LOCK_PLATFORM := x86_64-manylinux_2_28
UV_VERSION := 0.13.9
LOCK_VENV := build/venv-lock
LOCK_TOOL := $(LOCK_VENV)/.uv-$(UV_VERSION)
UPGRADE ?=
# The lock's wheels for this machine's Python, so the bundle test installs a bundle offline.
WHEELHOUSE := build/wheelhouse
WHEELHOUSE_STAMP := $(WHEELHOUSE)/lock.sha256

.PHONY: install dev test lint typecheck pytest terraform-check checkov wheelhouse lock bench \
	bundle clean

$(STAMP): pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' -e './clients/python[shadow,kafka]'
	touch $(STAMP)

## Everything the gates need from the package registry, in one step: the dev venv, checkov's venv
## and the bundle test's wheelhouse. After it, `make test` reaches no network.
install: $(STAMP) checkov wheelhouse

## checkov in a venv of its own (tools/checkov.sh says why), installed once, version pinned there.
checkov:
	bash tools/checkov.sh --install-only

wheelhouse: $(WHEELHOUSE_STAMP)

$(WHEELHOUSE_STAMP): $(LOCK) | $(STAMP)
	rm -rf $(WHEELHOUSE)
	$(BIN)/python -m pip download --quiet --require-hashes --no-deps --only-binary=:all: \
		-r $(LOCK) -d $(WHEELHOUSE)
	$(BIN)/python -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' \
		$(LOCK) > $@

## Recompile $(LOCK) after any change to [project].dependencies (tests/unit/test_locks.py fails
## until then). Pins already in the lock are kept where they still fit; `make lock UPGRADE=1`
## moves every package to the newest release its specifiers allow. uv runs from a pinned venv.
lock: $(LOCK_TOOL)
	$(LOCK_VENV)/bin/uv pip compile pyproject.toml --quiet --no-config --generate-hashes \
		--no-strip-extras --python-version $(LOCK_PYTHON) --python-platform $(LOCK_PLATFORM) \
		--custom-compile-command 'make lock' $(if $(UPGRADE),--upgrade) --output-file $(LOCK)

$(LOCK_TOOL):
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet 'uv==$(UV_VERSION)'
	touch $@

## The one-command local ledger: embedded PostgreSQL, migrations, a demo ledger, :8080.
dev: $(STAMP)
	$(BIN)/arus dev

## Every gate: lint, format, types, Terraform checks, then the whole test suite.
test: install lint typecheck terraform-check pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy shared/arus clients/python/arus_client

pytest: $(STAMP) $(WHEELHOUSE_STAMP)
	$(BIN)/pytest

## terraform fmt and checkov (in its own venv); init/validate/plan need provider downloads.
terraform-check: checkov
	TF_CLI_CONFIG_FILE=/dev/null terraform fmt -check -recursive terraform
	bash tools/checkov.sh

## The bench: engine, reference shape, HTTP and batches side by side (build/bench/, needs wrk),
## then the locust brackets: throughput ceiling and first failed bracket (build/loadtest/),
## then the placements rows: 1, 4 and 16 ledgers on one placement, and two (build/placements/).
## BEFORE=REV (e.g. make bench BEFORE=cd80aea) also runs the engine and HTTP rows of REV from a
## git worktree, alternated with this checkout's, and adds the before/after table.
BEFORE ?=
bench: $(STAMP)
	$(BIN)/python loadtest/bench.py --out build/bench $(if $(BEFORE),--before $(BEFORE))
	$(BIN)/python loadtest/bracket.py --out build/loadtest
	$(BIN)/python loadtest/placements_bench.py --out build/placements

## Each function's deployable source and reproducible zip in build/bundles/ (from $(LOCK)).
bundle: $(STAMP)
	$(BIN)/arus bundle --out build/bundles

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist
