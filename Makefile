# raiha: `make help` lists the targets.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup test test-fast train eval lint format bench gpu-check clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

setup: ## create .venv and install raiha with its dev extras, exact CI versions (constraints.txt)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -c constraints.txt -e '.[dev]'

test: ## run the whole test suite and execute the notebooks (CI runs this)
	$(PY) -m pytest -q --nbmake --nbmake-timeout=900 tests notebooks $(PYTEST_ARGS)

test-fast: ## the tests without the slow (training, subprocess) ones, no notebooks
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

train: ## train on the built-in synthetic world and print the results table
	$(PY) -m raiha.train $(ARGS)

lint: ## ruff over sources, tests and benchmarks, then the import contracts (import-linter)
	$(PY) -m ruff check src tests benchmarks
	$(VENV)/bin/lint-imports

format: ## ruff format + import sorting
	$(PY) -m ruff check --fix --select I src tests benchmarks
	$(PY) -m ruff format src tests benchmarks

bench: ## every benchmark (one JSON line each; not gpu_check)
	@for script in benchmarks/*.py; do case $$script in *gpu_check.py) continue;; esac; \
	  echo "# $$script"; $(PY) $$script || exit 1; done

# gpu-check runs with .venv's Python when there is one, else python3 with the checkout's src
# on PYTHONPATH; SITE=DIR adds a `pip install --target DIR` folder (packages the node lacks).
GPU_PY ?= $(if $(wildcard $(PY)),$(PY),$(PYTHON))
SITE ?=
gpu-check: ## on a CUDA machine (< 8 min): environment, train_step + retrieval benchmarks, GPU runs; one JSON summary
	PYTHONPATH="$(CURDIR)/src$(if $(SITE),:$(abspath $(SITE)))$${PYTHONPATH:+:$$PYTHONPATH}" $(GPU_PY) benchmarks/gpu_check.py $(ARGS)

clean: ## remove generated data, logs and caches of this checkout
	rm -rf logs data .pytest_cache .ruff_cache
