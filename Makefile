# `make test` is the one command that checks everything; CI runs it too.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PYO3_PYTHON := $(abspath $(BIN)/python)

.PHONY: test test-other-pythons venv build lint fmt bench bench-pool bench-all clean

# Other supported Pythons found on the machine (pyenv's layout, or on PATH).
OTHER_PYTHONS := $(foreach v,3.10 3.12 3.13,$(firstword $(wildcard $(HOME)/.pyenv/versions/$(v).*/bin/python$(v)) $(shell command -v python$(v) 2>/dev/null)))

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

venv: $(BIN)/python
	$(BIN)/python -m pip install -q -r requirements-test.txt

# The extension in the dev profile: quick to build, same behaviour.
build: venv
	$(BIN)/maturin develop -q

test: build
	$(BIN)/python tools/module_graph.py --check
	cargo test -q
	$(BIN)/python -m pytest -q tests
	$(MAKE) --no-print-directory test-other-pythons

# The whole suite again on each other Python present (each in its own venv
# and target directory): the leak this project must never have showed up
# only on Python 3.12.
test-other-pythons:
	@for py in $(OTHER_PYTHONS); do \
		ver=$$($$py -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) \
			|| { echo "== skipping $$py (it does not run)"; continue; }; \
		echo "== Python $$ver ($$py)"; \
		venv=.venv-$$ver; \
		[ -x $$venv/bin/python ] || $$py -m venv $$venv || exit 1; \
		$$venv/bin/python -m pip install -q -r requirements-test.txt || exit 1; \
		PYO3_PYTHON=$(CURDIR)/$$venv/bin/python CARGO_TARGET_DIR=target/py$$ver VIRTUAL_ENV=$(CURDIR)/$$venv \
			$$venv/bin/maturin develop -q || exit 1; \
		$$venv/bin/python -m pytest -q -p no:cacheprovider tests || exit 1; \
	done

lint: venv
	$(BIN)/python tools/module_graph.py --check
	cargo fmt --check
	cargo clippy --all-targets -q -- -D warnings
	$(BIN)/ruff check python tests bench examples tools
	$(BIN)/ruff format --check python tests bench examples tools

fmt: venv
	cargo fmt
	$(BIN)/ruff format python tests bench examples tools

# Benchmarks need a release build and wrk (apt-get install wrk).
bench: venv
	$(BIN)/pip install -q granian
	$(BIN)/maturin develop -q --release
	$(BIN)/python bench/run.py

# The build with PyO3's reference pool (RUSTFLAGS set, even empty, replaces
# the strict cfg of .cargo/config.toml) against the strict one every other
# target builds, both release builds, in the same run (docs/architecture.md,
# "Strict build").
POOL_RELEASE := target/pool-release
bench-pool: venv
	$(BIN)/pip install -q granian
	$(BIN)/maturin develop -q --release
	rm -rf $(POOL_RELEASE)/wheels $(POOL_RELEASE)/site
	RUSTFLAGS="" CARGO_TARGET_DIR=$(POOL_RELEASE) \
		$(BIN)/maturin build -q --release -i $(BIN)/python -o $(POOL_RELEASE)/wheels
	$(BIN)/python -m pip install -q --no-deps --target $(POOL_RELEASE)/site $(POOL_RELEASE)/wheels/*.whl
	$(BIN)/python bench/run.py --build pool=$(POOL_RELEASE)/site $(BENCH_ARGS)

# Every interface and scenario against Granian, Uvicorn and Gunicorn, then
# TLS, static files, many idle connections and the real-framework apps
# (also needs h2load, nginx and perf: apt-get install nghttp2-client nginx
# linux-perf). About an hour and a half on two cores.
bench-all: venv
	$(BIN)/pip install -q granian uvicorn httptools gunicorn matplotlib
	$(BIN)/maturin develop -q --release
	$(BIN)/python bench/harness.py
	$(BIN)/python bench/tls.py --pin > bench/results/tls.md
	$(BIN)/python bench/static.py --pin --out bench/results/static.md
	$(BIN)/python bench/idle.py > bench/results/idle-http.md
	$(BIN)/python bench/idle.py --kind ws > bench/results/idle-ws.md
	$(BIN)/python bench/frameworks.py

clean:
	rm -rf $(VENV) .venv-3.* target
