# The README's two commands: `make demo` (set up and run the main job) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/shcr-sim: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

.PHONY: install demo test lint bench
install: $(BIN)/shcr-sim

demo: install
	$(BIN)/shcr-sim demo

test: install
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/run.py
