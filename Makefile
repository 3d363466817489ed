# s3qbb developer commands. Needs only Python >= 3.11 and make; everything else goes into .venv.

VENV        := .venv
BIN         := $(VENV)/bin
STAMP       := $(VENV)/.installed
EXTRAS      := dev
PY_CANDIDATES := python3.11 python3.12 python3
# Directories that exist are linted; benchmarks/ may not be there yet.
LINT_PATHS  := $(wildcard s3qbb tests benchmarks)
PYTEST_ARGS ?= -n 2 -q

.DEFAULT_GOAL := help
.PHONY: help venv $(VENV) pyc demo test lint typecheck docs bench report scale clean distclean

help:
	@echo "make demo       run the demo (python -m s3qbb.demo)"
	@echo "make test       lint, typecheck, pytest ($(PYTEST_ARGS)), docs"
	@echo "make lint       ruff check + ruff format --check"
	@echo "make typecheck  mypy --strict"
	@echo "make docs       build the Sphinx docs into docs/_build/html (warnings are errors; EXTRAS=docs installs only the docs extra)"
	@echo "make bench      run the benchmarks: S3Datastore, butler, registry, soak (each vs raw boto3 / targets)"
	@echo "make report     the performance report: every benchmark on SeaweedFS and moto -> docs/perf/ (table + plots)"
	@echo "make scale      the scale-out benchmark: 1-16 concurrent run-quantum jobs, SeaweedFS + PostgreSQL -> docs/perf/"
	@echo "make localstack-venv  build LocalStack's own venv (Python 3.11, in ~/.cache/s3qbb) for its tests"
	@echo "make clean      remove build and tool caches (distclean also removes .venv)"

venv $(VENV): $(STAMP)

# The interpreter: created once with the first Python >= 3.11 found (recreated if broken).
$(BIN)/python:
	@py=""; \
	for c in $(PY_CANDIDATES); do \
	  if command -v $$c >/dev/null 2>&1 && \
	     $$c -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then py=$$c; break; fi; \
	done; \
	if [ -z "$$py" ]; then echo "error: s3qbb needs Python >= 3.11 (tried: $(PY_CANDIDATES))" >&2; exit 1; fi; \
	echo "creating $(VENV) with $$(command -v $$py) ($$($$py -V 2>&1))"; \
	$$py -m venv --clear $(VENV)

# Dependencies: reinstalled only when pyproject.toml changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[$(EXTRAS)]'
	@touch $@

# Benchmarks start fresh interpreters: compile s3qbb first, as pip does for an installed package, so
# that no child recompiles it (PYTHONDONTWRITEBYTECODE=1 would otherwise make every child pay it).
pyc: $(STAMP)
	@$(BIN)/python -m compileall -q s3qbb benchmarks

demo: $(STAMP)
	$(BIN)/python -m s3qbb.demo

test: $(STAMP)
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory typecheck
	$(BIN)/pytest $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory docs

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

typecheck: $(STAMP)
	$(BIN)/mypy --strict

docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

bench: $(STAMP) pyc
	$(BIN)/python -m benchmarks
	$(BIN)/python -m benchmarks.qbb
	$(BIN)/python -m benchmarks.registry_bench --server seaweedfs
	$(BIN)/python -m benchmarks.soak
	$(BIN)/python -m benchmarks.batch_bench

report: $(STAMP) pyc
	$(BIN)/python -m benchmarks.report_all

scale: $(STAMP) pyc
	$(BIN)/python -m benchmarks.scale

# LocalStack (the real-S3 test tier) lives in its own virtual environment, built once by this
# script (a no-op when it is ready). `make test` does not depend on it: the pytest fixtures build it
# on demand and skip the LocalStack tests if that is impossible (unless S3QBB_REQUIRE_LOCALSTACK=1).
.PHONY: localstack-venv
localstack-venv:
	localstack/start.sh --venv-only

clean:
	rm -rf build dist docs/_build .mypy_cache .ruff_cache .pytest_cache .hypothesis
	find . -path ./$(VENV) -prune -o \( -name __pycache__ -o -name '*.egg-info' \) -type d -print \
	  | xargs rm -rf

distclean: clean
	rm -rf $(VENV)
