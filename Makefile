# The two entry points of the README. Both work from a fresh clone with python3, pip and make.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: setup run test system-deps lint typecheck unit clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

## The main job: the server on the embedded DuckDB default, with the demo mesh feeding it.
run: setup
	$(VENV)/bin/meshscope demo

## Everything CI checks: lint, types, tests.
test: setup system-deps lint typecheck unit

system-deps:
	bash scripts/system-deps.sh

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: setup
	$(VENV)/bin/mypy

# pytest exits 5 when a selection is empty; that is not a failure of the suite.
unit: setup
	$(PY) -m pytest -q $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then rc=0; fi; exit $$rc

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
