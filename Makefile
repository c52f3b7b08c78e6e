# Two commands set everything up on a fresh machine:
#   make demo   install kdcli and run the demo recipe (finetune -> shrink -> distill -> export -> report) offline
#   make test   install kdcli with its test tools and run the test suite
# PYTHON may point at any Python >= 3.10; a virtual environment is made in .venv.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch (installs in seconds); GPU users: see README, "GPU".
TORCH ?= torch==2.13.0

.PHONY: install install-dev demo demo-slots test test-slow lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[export,plot]"

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev]"

# The demo recipe (examples/recipes/demo.yaml) through `kdcli run`: a rerun reuses finished stages.
# One thread: a 128-wide model gains nothing from more, and they fight on a busy machine.
demo: install
	test -f demo-out/encoder/config.json || $(BIN)/python examples/make_tiny_model.py demo-out/encoder
	HF_HUB_OFFLINE=1 OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} KDCLI_CACHE=$${KDCLI_CACHE:-demo-out/cache} \
		$(BIN)/kdcli run examples/recipes/demo.yaml --out demo-out/run --set teacher.model=demo-out/encoder

# the same workflow for slot filling (token classification) on the sample's MASSIVE slots
demo-slots: install
	PATH="$(abspath $(BIN)):$$PATH" bash examples/tiny_slots.sh demo-out

test: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python -m pytest

test-slow: install-dev
	$(BIN)/python -m pytest -m slow

# lint-imports: the package's layers (pyproject.toml, [tool.importlinter]; docs/design.md).
# mypy: the package's types (pyproject.toml, [tool.mypy]).
lint:
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports && $(BIN)/mypy

format:
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

# Each benchmark prints kdcli against its baseline, measured side by side in one run.
bench: install-dev
	$(BIN)/python benchmarks/bench_shrink.py
	$(BIN)/python benchmarks/bench_vocab.py
	$(BIN)/python benchmarks/bench_distill.py --epochs 3
	$(BIN)/python benchmarks/bench_eval.py
	$(BIN)/python benchmarks/bench_report_noise.py
	$(BIN)/python benchmarks/bench_export.py
	$(BIN)/python benchmarks/bench_search.py

clean:
	rm -rf demo-out .pytest_cache .ruff_cache .import_linter_cache .mypy_cache
