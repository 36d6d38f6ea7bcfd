# `make test` is the one command that checks everything; CI runs it too.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PYO3_PYTHON := $(abspath $(BIN)/python)

.PHONY: test venv build lint fmt bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

venv: $(BIN)/python
	$(BIN)/python -m pip install -q -r requirements-test.txt

# The extension in the dev profile: quick to build, same behaviour.
build: venv
	$(BIN)/maturin develop -q

test: build
	cargo test -q
	$(BIN)/python -m pytest -q tests

lint: venv
	cargo fmt --check
	cargo clippy --all-targets -q -- -D warnings
	$(BIN)/ruff check python tests bench examples
	$(BIN)/ruff format --check python tests bench examples

fmt: venv
	cargo fmt
	$(BIN)/ruff format python tests bench examples

# Benchmarks need a release build and wrk (apt-get install wrk).
bench: venv
	$(BIN)/pip install -q granian
	$(BIN)/maturin develop -q --release
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) target
