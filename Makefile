# Quick start: `make demo` (set up + run the built-in demo), `make test` (set up + run the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ntknas-installed
# Where torch comes from. Empty (the default): the configured package index, whatever wheel it
# serves (on Linux, PyPI's is the CUDA build). `make test TORCH_INDEX=https://download.pytorch.org/whl/cpu`
# picks the CPU build; it applies when .venv is created (`make clean` first to switch).
TORCH_INDEX ?=
# The suite runs on every core and one worker more (pytest-xdist; -n auto's count and each
# worker's share of torch threads are set in tests/conftest.py), a test module per worker so that
# module fixtures are built once, the longest modules first (tests/conftest.py's LONGEST_MODULES,
# in collection order: --no-loadscope-reorder).
# `make test PYTEST_WORKERS=` runs it in one process.
PYTEST_WORKERS ?= -n auto --dist loadfile --no-loadscope-reorder

# The static checks run side by side (mypy alone would leave a core idle), then the suite.
CHECK_JOBS ?= 2

# pip installs without compiling (--no-compile): compiling every module of torch, ray and the rest
# takes half of a fresh setup (about 30 of 60 s on 2 cores), and a run imports a fraction of them.
# Python compiles each module the first time it is imported instead, so the commands below write
# bytecode even where the environment asks not to (PYTHONDONTWRITEBYTECODE, set on some CI images:
# every process would then compile torch again, 1.5 s each). Setup compiles what the CLI and the
# test suite's collection import, once and on both cores, rather than in each test worker at once.
unexport PYTHONDONTWRITEBYTECODE
PIP_INSTALL := $(BIN)/python -m pip install --quiet --no-compile

.PHONY: demo test checks lint typecheck layers manual setup docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) --upgrade pip
	$(PIP_INSTALL) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) torch==2.13.0
	$(PIP_INSTALL) -e '.[dev,docs]'
	$(BIN)/python -c 'import ntknas.cli; ntknas.cli.build_parser()' & cli=$$!; \
	$(BIN)/python -c 'import ray, sklearn.datasets, hypothesis, PIL.Image, pytest, xdist' && \
	wait $$cli
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/ntknas demo --out runs/demo

test: $(STAMP)
	$(MAKE) --no-print-directory --output-sync=target -j$(CHECK_JOBS) checks
	$(BIN)/python -m pytest -q $(PYTEST_WORKERS)

checks: lint typecheck layers manual

lint: $(STAMP)
	$(BIN)/ruff check tests ntknas

typecheck: $(STAMP)
	$(BIN)/mypy ntknas

layers: $(STAMP)
	$(BIN)/lint-imports

manual: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

clean:
	rm -rf $(VENV) runs site .pytest_cache
