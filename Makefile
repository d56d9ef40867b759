# Quick start: `make demo` and `make test` on a machine with only Python 3.
PYTHON ?= python3
VENV ?= .venv
EXTRAS ?= test
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(EXTRAS)

.PHONY: venv demo test lint docs bench clean

venv: $(STAMP)

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP)

demo: venv
	$(BIN)/python examples/demo/run_demo.py

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/python -m ruff check boogie_tasks tests examples benchmarks
	$(BIN)/python -m ruff format --check boogie_tasks tests examples benchmarks
	$(BIN)/lint-imports --no-logo
	$(BIN)/python -m mypy

docs:
	$(MAKE) venv EXTRAS=docs
	$(VENV)/bin/python -m sphinx -W -b html docs docs/_build/html

bench:
	$(MAKE) venv EXTRAS=test,bench
	$(BIN)/python benchmarks/throughput.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var docs/_build

.PHONY: demo-web
demo-web: venv
	$(BIN)/python examples/demo/run_web.py
