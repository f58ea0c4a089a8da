# The few commands everyone runs. Each creates .venv and builds the extension itself.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
EXTRAS  ?= streams,sim,bench,test

.PHONY: setup build models run test pytest cargo-test lint fmt bench bench-ci clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Install every runtime, test and bench dependency, then build the Rust core (release).
setup: $(BIN)/python
	$(BIN)/pip install -q "maturin>=1.7,<2"
	VIRTUAL_ENV=$(abspath $(VENV)) $(BIN)/maturin develop --release -q -E $(EXTRAS)

build: $(BIN)/python
	VIRTUAL_ENV=$(abspath $(VENV)) $(BIN)/maturin develop --release -q

models: setup
	$(BIN)/citystream models fetch

# The main job, streamed: embedded broker + Faust worker + feeder on the sample video
# (real detector, Rust core); live summary, out/run/summary.json.
run: models
	$(BIN)/citystream run

# The whole test suite: Rust unit/integration tests, then pytest (unit, property,
# integration with the real broker and SUMO, end to end).
test: models cargo-test pytest

cargo-test:
	cargo test --release --workspace

pytest:
	$(BIN)/python -m pytest -q -x --durations=15

lint: $(BIN)/python
	$(BIN)/ruff check engine streams bench models tests
	$(BIN)/ruff format --check engine streams bench models tests
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --workspace --features python -- -D warnings

fmt:
	$(BIN)/ruff format engine streams bench models tests
	$(BIN)/ruff check --fix engine streams bench models tests
	cargo fmt --all

bench: build
	$(BIN)/citystream bench all

# The short signal-timing table in SUMO (600 s demand, one seed, ~2 min), as CI runs it.
bench-ci: models
	$(BIN)/citystream bench signals --quick

clean:
	rm -rf target $(VENV) out models/cache models/onnx
