# vidpan — two commands set everything up on a fresh machine:
#   make demo   segment a video with the shipped model and score it
#   make test   lint, type-check and run the test suite
#
# TORCH_SPEC pins the PyTorch wheel. The default is the CPU build; GPU users override it, e.g.
#   make test TORCH_SPEC="torch==2.5.1 --index-url https://download.pytorch.org/whl/cu124"

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.vidpan-installed
PYTEST_ARGS ?=

.PHONY: demo test lint typecheck pytest install clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Torch first, pinned, so that installing the package never resolves a bare `torch`.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

# OpenMP workers sleep instead of spinning between parallel regions: two test processes (and the
# subprocesses they start) share the cores without stealing them from each other (same values).
pytest: $(STAMP)
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

test: lint typecheck pytest

demo: $(STAMP)
	$(BIN)/python -m vidpan.demo --out demo_out

bench: $(STAMP)
	$(BIN)/vidpan bench eval

clean:
	rm -rf $(VENV) demo_out .pytest_cache .mypy_cache .ruff_cache
