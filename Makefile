# resnet-audit: `make audit` (the main job) and `make test`.
# Tests and runs share the release profile, so the dependencies are compiled once.

CARGO  ?= cargo
BIN    := target/release/resnet-audit
PYTHON ?= python3
VENV   := .venv

.PHONY: all build test fuzz audit demo-models bench bench-reference fixtures cuda-check slurm-test report-check \
	gpu-check-build gpu-check-cpu

all: build

build:
	$(CARGO) build --release --locked

# The whole test suite: unit, parity against the committed PyTorch outputs, error cases.
test:
	$(CARGO) test --release --locked

# A long run of the mutation fuzzer over every reader of untrusted bytes (tests/fuzz.rs; `make
# test` runs 400 executions per target). FUZZ_SECONDS caps each target's time, FUZZ_TARGET picks
# targets by name; crashing inputs land in target/fuzz/crashes/.
FUZZ_ITERATIONS ?= 100000
FUZZ_SEED ?= 14
fuzz:
	FUZZ_ITERATIONS=$(FUZZ_ITERATIONS) FUZZ_SEED=$(FUZZ_SEED) $(CARGO) test --release --locked --test fuzz -- --nocapture --test-threads 1

# A real one-node Slurm (Debian's slurm-wlm and munge, installed when absent; needs root, no
# systemd): an array job, a merge job that depends on it, a job cancelled and resubmitted.
# Every daemon and file lives under one temp dir and is stopped/removed at the end. Then the demo
# audit sharded 4 ways through `resnet-audit slurm --submit` must merge to the single-process tables,
# byte for byte, also with a shard cancelled and resubmitted (about 4 minutes on 2 cores).
slurm-test: build
	tests/slurm/run.sh

# Throughput on this machine (not a test): ResNet-50 forward (ours, candle's plain path, and
# PyTorch when `make bench-reference` has set up .venv); the evaluation pipeline (decode + resize,
# protocols (i) and (ii) end to end, the same three); the training step.
bench:
	$(CARGO) bench --locked --bench forward
	$(CARGO) bench --locked --bench protocols
	$(CARGO) bench --locked --bench training

# The audit: every experiment in experiments/ whose inputs are present (at least the embedded
# demo), the report in reports/latest/ (report.html, report.md, results.parquet/.csv, charts),
# then the drift gate. `make audit IMAGENET=/data/imagenet/val` adds the ImageNet experiments
# (weights from the Hugging Face cache or RESNET_CAFFE_DIR / FB_RESNET_DIR).
REPORT ?= reports/latest
ifdef IMAGENET
export IMAGENET_VAL := $(IMAGENET)
endif
audit: build
	$(BIN) audit experiments --out $(REPORT) --store reports/store
	$(BIN) check $(REPORT)

# The report in headless Chromium (Debian's `chromium`, installed when absent) at 1400 and 420 px:
# fails if the page, or any table, chart or code block on it, scrolls sideways at either width;
# prints where the two screenshots went. Checks the report `make audit` wrote (CI runs both),
# after tests/report/selftest.sh has shown that the check fails a page that is too wide and one
# with a frame that scrolls sideways (about 30 s).
# `make report-check REPORT_HTML=path/to/report.html` checks another report.
REPORT_HTML ?= $(REPORT)/report.html
report-check:
	tests/report/selftest.sh
	tests/report/check.sh $(REPORT_HTML) target/report-check

# Retrain the six demo models behind `make audit` (about 15 minutes on 2 cores): seeds 1-3 of
# the paper's and of fb.resnet.torch's recipe, into reports/demo-runs/, then copy the weights
# and curves to fixtures/demo-models/ (committed).
DEMO_RUNS := reports/demo-runs
demo-models: build
	$(BIN) train experiments/train/demo-paper.yaml --seeds 3 --out $(DEMO_RUNS)/paper
	$(BIN) train experiments/train/demo-fb.yaml --seeds 3 --out $(DEMO_RUNS)/fb
	mkdir -p fixtures/demo-models
	for recipe in paper fb; do for seed in 1 2 3; do \
	  cp $(DEMO_RUNS)/$$recipe/seed-$$seed/weights.safetensors fixtures/demo-models/$$recipe-seed-$$seed.safetensors || exit 1; \
	  cp $(DEMO_RUNS)/$$recipe/seed-$$seed/curve.csv fixtures/demo-models/$$recipe-seed-$$seed.curve.csv || exit 1; \
	done; done

# The PyTorch + torchvision venv the benches compare with (the fixtures' venv; about 3 GB from PyPI).
bench-reference: $(VENV)/.installed

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

# Compile-check the CUDA backend, plain and with cuDNN (no GPU needed), with the toolchain from
# tools/ (a copy of the workplace script; cuDNN's headers and library from its PyPI wheel).
# About 42 + 4 minutes cold on 2 cores.
CUDA_TOOLCHAIN ?= /tmp/cuda-toolchain
CUDA_ENV := . $(CUDA_TOOLCHAIN)/env.sh
# Its own target dir keeps the CPU build's artifacts intact.
cuda-check: $(CUDA_TOOLCHAIN)/env.sh
	$(CUDA_ENV) && CARGO_TARGET_DIR=target/cuda $(CARGO) build --release --locked --features cuda
	$(CUDA_ENV) && CARGO_TARGET_DIR=target/cuda $(CARGO) build --release --locked --features cudnn

$(CUDA_TOOLCHAIN)/env.sh:
	$(CARGO) fetch --locked
	tools/cuda-toolchain.sh $(CUDA_TOOLCHAIN)

# The binary carried to a GPU machine for tests/gpu/check.sh: CUDA (without cuDNN: one library
# fewer to find there), stripped, then gzipped: stripped it is about 86 MiB (31 MB of CPU code,
# 33 MB of candle's GPU kernels, 14 MB of read-only data), over the 60 MiB a carried file may
# have (the limit is 64); gzipped about 23 MiB (22.9 here). check.sh --bin takes either and unpacks the .gz.
GPU_BIN := target/gpu/resnet-audit
gpu-check-build: $(CUDA_TOOLCHAIN)/env.sh
	$(CUDA_ENV) && CARGO_TARGET_DIR=target/cuda $(CARGO) build --release --locked --features cuda --bin resnet-audit
	mkdir -p target/gpu
	strip -o $(GPU_BIN) target/cuda/release/resnet-audit
	gzip -9 -c $(GPU_BIN) > $(GPU_BIN).gz
	@for f in $(GPU_BIN) $(GPU_BIN).gz; do size=$$(stat -c %s $$f); echo "$$f: $$((size / 1048576)) MiB ($$size bytes)"; done
	@size=$$(stat -c %s $(GPU_BIN).gz); test $$size -lt $$((60 * 1048576)) || { echo "$(GPU_BIN).gz is over 60 MiB: too large to carry"; exit 1; }

# The GPU self-check's script and checks on this CPU (quick; a few minutes): parity, the demo on
# candle's ops vs the fast path, training steps, throughput; results in target/gpu-check-cpu/.
gpu-check-cpu: build
	OUT=target/gpu-check-cpu tests/gpu/check.sh --device cpu --bin $(BIN)
