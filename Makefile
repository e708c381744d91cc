# One-command set-up, tests, demo and benchmarks. Everything goes into a local virtual environment (.venv).
#
#   make test          set up from nothing (if needed) and run the test suite
#   make demo          the main job: train the Euler solver (DeepSets phi(ReLU)) on the linear investment economy,
#                      judge it against the exact LQ policy, write runs/<name>/ (judge table, figures, checkpoints)
#   make bench         throughput benchmark (writes benchmarks/results/*.json and the README table)
#   make bench-all     every benchmark in quick mode (~10-15 min; NAME_quick results, logs in benchmarks/logs/);
#                      the full suite (hours, rewrites the committed results): .venv/bin/python benchmarks/run_all.py --full
#
# torch is installed FIRST and pinned, so that no later requirement pulls the registry's newest CUDA build.
# On a CPU machine of this project's kind `torch==2.13.0` resolves to the local CPU wheel. Elsewhere:
#   CPU-only Linux:  make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
#   NVIDIA GPU:      make test TORCH_INDEX=https://download.pytorch.org/whl/cu128
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
PYTEST_ARGS ?=
BIN := $(VENV)/bin

.PHONY: setup test demo bench bench-all clean

setup: $(VENV)/.setup-done

$(VENV)/.setup-done: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $@

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: setup
	$(BIN)/python -m train configs/investment_linear_euler_relu.yaml

bench: setup
	$(BIN)/python benchmarks/env_throughput.py
	$(BIN)/python benchmarks/update_readme.py

bench-all: setup
	nice $(BIN)/python benchmarks/run_all.py --quick

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
