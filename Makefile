# Two entry points: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export TF_CPP_MIN_LOG_LEVEL ?= 2
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: demo test lint typecheck pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[dev,cluster]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/seqtune demo

lint: $(STAMP)
	$(BIN)/ruff check server tools tests
	$(BIN)/ruff format --check server tools tests

typecheck: $(STAMP)
	$(BIN)/mypy server tools

pytest: $(STAMP)
	$(BIN)/pytest

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Benchmarks, not part of `make test`: about 50 minutes on 2 cores; `make bench QUICK=1`
# runs a few-minute version. Results: bench/RESULTS.md and bench/results/.
bench: $(STAMP)
	$(BIN)/python -m bench.run_all $(if $(QUICK),--quick)
