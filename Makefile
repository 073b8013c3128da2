# resnet-audit: `make audit` (the main job) and `make test`.
# Tests and runs share the release profile, so the dependencies are compiled once.

CARGO  ?= cargo
BIN    := target/release/resnet-audit
PYTHON ?= python3
VENV   := .venv

.PHONY: all build test audit bench fixtures cuda-check

all: build

build:
	$(CARGO) build --release --locked

# The whole test suite: unit, parity against the committed PyTorch outputs, error cases.
test:
	$(CARGO) test --release --locked

# Throughput on this machine (not a test): ResNet-50 forward, BN folded vs separate; then the
# evaluation pipeline (decode + resize, protocols end to end).
bench:
	$(CARGO) bench --locked --bench forward
	$(CARGO) bench --locked --bench protocols
	$(CARGO) bench --locked --bench training

# Until the audit report lands: inspect the committed fixture models, then evaluate the
# runnable example experiment (committed images and models only) under protocols (i)-(iv).
audit: build
	@for f in fixtures/parity/resnet50_w8.safetensors fixtures/parity/resnet18_w8.safetensors \
	          fixtures/parity/cifar_resnet20_a.safetensors; do \
	  $(BIN) inspect $$f || exit 1; echo; \
	done
	$(BIN) eval experiments/fixtures.yaml --store reports/store

# Regenerate the committed parity fixtures with PyTorch/torchvision (optional; needs PyPI,
# about 3 GB in .venv). `make test` never needs Python.
fixtures: $(VENV)/.installed
	$(VENV)/bin/python fixtures/generate.py
	$(VENV)/bin/python fixtures/generate_preprocess.py
	$(VENV)/bin/python fixtures/generate_protocols.py
	$(VENV)/bin/python fixtures/generate_metrics.py
	$(VENV)/bin/python fixtures/generate_caffe.py
	$(VENV)/bin/python fixtures/generate_training.py

$(VENV)/.installed: fixtures/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -r fixtures/requirements.txt
	touch $@

# Compile-check the CUDA backend (no GPU needed) with the toolchain from ../shared/tools.
CUDA_TOOLCHAIN ?= /tmp/cuda-toolchain
# Its own target dir keeps the CPU build's artifacts intact.
cuda-check:
	$(CARGO) fetch --locked
	test -f $(CUDA_TOOLCHAIN)/env.sh || ../shared/tools/cuda-toolchain.sh $(CUDA_TOOLCHAIN)
	. $(CUDA_TOOLCHAIN)/env.sh && CARGO_TARGET_DIR=target/cuda $(CARGO) build --release --locked --features cuda
