# The README's commands. Each target sets up what it needs (uv in .tools/, the locked venv in .venv/);
# a second run reinstalls nothing when pyproject.toml and uv.lock are unchanged.
PYTHON ?= python3
UV_VERSION := 0.13.8
UV := .tools/bin/uv
VENV := .venv
BIN := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
# Compile .pyc at install: machines that set PYTHONDONTWRITEBYTECODE would otherwise recompile every
# module on every start (about 3 s per `spe` command).
export UV_COMPILE_BYTECODE := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: run test test-fast lint typecheck lock bench clean setup setup-test

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.stamp-run: pyproject.toml uv.lock Makefile | $(UV)
	$(UV) sync --frozen --inexact --extra local
	touch $@

$(VENV)/.stamp-test: pyproject.toml uv.lock Makefile | $(UV)
	$(UV) sync --frozen --extra test --extra cdk
	touch $@ $(VENV)/.stamp-run

setup: $(VENV)/.stamp-run
# The API report's browser test renders in Debian's chromium: installed once (as root, as CI runs), checked each time.
setup-test: $(VENV)/.stamp-test
	@command -v chromium >/dev/null || ( [ "$$(id -u)" = 0 ] \
		&& (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			chromium >/dev/null) \
		|| echo "chromium not installed (needs root: apt-get install chromium); its browser test will skip" )

## run: set up and run the main job (the rebalance state machine, locally, on the bundled data)
run: setup
	$(BIN)/spe run $(ARGS)

## test: set up and run lint, type checks and the whole test suite (what CI runs)
test: setup-test lint typecheck
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

## test-fast: the same without the slow suites
test-fast: setup-test lint typecheck
	$(BIN)/python -m pytest -n 2 -m "not slow" $(PYTEST_ARGS)

lint: setup-test
	$(BIN)/ruff check shared functions tests benchmarks infra
	$(BIN)/ruff format --check shared functions tests benchmarks infra

typecheck: setup-test
	$(BIN)/mypy shared/portfolio_engine
	$(BIN)/mypy --explicit-package-bases functions

lock: | $(UV)
	$(UV) lock

bench: setup-test
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
