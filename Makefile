# One entry point for every routine task. `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH := 2.13.0

.PHONY: install run test lint typecheck unit eval bench clean

# A line before each long step. setuptools notes on every editable install of a flat layout that a folder named
# like the package (our `threadline/` of links, by design) comes first on imports from the repository root: that
# one informational notice is filtered; any other warning of the build still shows.
$(STAMP): pyproject.toml
	@echo "install: creating the virtualenv in $(VENV)"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@# The local CPU build of PyTorch first: an unpinned torch pulls gigabytes of CUDA packages.
	@echo "install: PyTorch $(TORCH) (the CPU build; the longest download)"
	@$(BIN)/python -m pip install --quiet torch==$(TORCH)
	@echo "install: Threadline and its dependencies (editable, with the dev tools)"
	@PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)
	@echo "install: done ($(VENV)/bin/threadline)"

install: $(STAMP)

# Demo API keys (each role; see README "Auth"): set THREADLINE_BOOTSTRAP_KEYS to use your own. The /demo chat page
# is on for a laptop run (loopback only).
run: install
	THREADLINE_DEMO_PAGE="$${THREADLINE_DEMO_PAGE:-true}" THREADLINE_BOOTSTRAP_KEYS="$${THREADLINE_BOOTSTRAP_KEYS:-channel:demo-channel-key-0001,agent:demo-agent-key-00001,admin:demo-admin-key-00001,qa:demo-qa-key-000001,associate:demo-associate-key-01}" $(BIN)/threadline serve

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

# The retrieval set: the shipped banking knowledge set (evals/banking_knowledge), or EVAL_DATA=DIR holding
# documents.jsonl and retrieval_dev.jsonl.
EVAL_DATA ?=

# Every shipped suite offline (exit 1 below a suite's thresholds, HTML report in .threadline/), the routing dev
# sets (offline model beside the 1-NN baseline), then the retrieval set.
eval: install
	mkdir -p .threadline
	$(BIN)/threadline eval run --offline-only --report .threadline/eval-report.html
	$(BIN)/threadline eval routing
	$(BIN)/threadline eval retrieval --cross-validate $(if $(EVAL_DATA),--docs $(EVAL_DATA)/documents.jsonl --tasks $(EVAL_DATA)/retrieval_dev.jsonl)

clean:
	rm -rf $(VENV) .threadline .pytest_cache .mypy_cache .ruff_cache
