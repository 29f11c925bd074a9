# One entry point for every routine task. `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint typecheck unit eval bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The local CPU build of PyTorch first: an unpinned torch pulls gigabytes of CUDA packages.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/threadline serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest

test: lint typecheck unit

bench: install
	$(BIN)/threadline bench

EVAL_DATA ?= ../shared/data/banking_knowledge

eval: install
	$(BIN)/threadline eval retrieval --docs $(EVAL_DATA)/documents.jsonl --tasks $(EVAL_DATA)/retrieval_dev.jsonl

clean:
	rm -rf $(VENV) .threadline .pytest_cache .mypy_cache .ruff_cache
