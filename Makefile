# The two commands: `make run` (install what is missing, build, serve http://localhost:8000 with the preview
# engine) and `make test` (every test). Everything a fresh machine needs is installed from here.

SHELL := /bin/bash
PORT ?= 8000
ENGINE ?= preview
WEIGHTS ?=
DATA_DIR ?= data
VENV := .venv
PYTHON := $(VENV)/bin/python
APT_PACKAGES := ffmpeg espeak-ng chromium chromium-driver libsqlite3-dev wrk
STAMPS := .make
SWIFT_RELEASE := .build/release/infinitetalk

.PHONY: run test lint test-swift test-engine test-web parity memory-plan bench bench-engine bench-shared bench-gpu build build-release deps lock format clean

run: deps build-release
	$(SWIFT_RELEASE) serve --port $(PORT) --data-dir $(DATA_DIR) --engine $(ENGINE) $(if $(WEIGHTS),--weights $(WEIGHTS))

test: deps
	$(MAKE) lint
	$(MAKE) test-engine
	$(MAKE) test-swift
	$(MAKE) test-web

deps: $(STAMPS)/apt $(STAMPS)/venv

# Debian packages: ffprobe/ffmpeg (service probes audio, tests check outputs), espeak-ng (test speech),
# chromium + driver (browser tests), sqlite headers (GRDB), wrk (benchmarks).
$(STAMPS)/apt:
	@mkdir -p $(STAMPS)
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@touch $@

# The engine's virtual environment at the exact versions of engine/constraints.txt (torch from PyPI is large: pip's
# cache makes reinstalls fast).
$(STAMPS)/venv: engine/pyproject.toml engine/constraints.txt
	@mkdir -p $(STAMPS)
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -c engine/constraints.txt -e 'engine[test]'
	@touch $@

# Refresh engine/constraints.txt: the newest versions pyproject.toml allows, resolved in a fresh venv.
lock:
	rm -rf $(STAMPS)/lock-venv && python3 -m venv $(STAMPS)/lock-venv
	$(STAMPS)/lock-venv/bin/pip install -q -e 'engine[test]'
	{ sed -n '1,2p' engine/constraints.txt; $(STAMPS)/lock-venv/bin/pip freeze --exclude-editable | grep -v '^#'; } > engine/constraints.new
	mv engine/constraints.new engine/constraints.txt && rm -rf $(STAMPS)/lock-venv
	@echo "engine/constraints.txt refreshed: run make test, then commit it"

# Lint and format checks (configs: ruff.toml, .swift-format). `make format` applies the formatters.
lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	swift format lint --strict -r Sources Tests Package.swift

format: deps
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
	swift format -i -r Sources Tests Package.swift

build:
	swift build

build-release:
	swift build -c release

test-engine: deps
	$(PYTHON) -m pytest -q engine/tests

# The end-to-end tests spawn the built binary (kill -9 and restart), so build it first.
test-swift: deps
	swift build --product infinitetalk
	swift test

test-web: deps build
	$(PYTHON) -m pytest -q web/tests

# Another fixture set in the same format: make parity PARITY_DIR=/path/to/fixtures
PARITY_DIR ?= ../shared/parity
parity: deps
	PYTHONPATH=engine/tests $(PYTHON) -m parity $(PARITY_DIR)

# The service bench (fake engine), then live playback's time to first segment (preview engine); fails if either does.
bench: deps build-release
	$(PYTHON) bench/service_bench.py --binary $(SWIFT_RELEASE); service=$$?; \
	$(PYTHON) bench/live_bench.py --binary $(SWIFT_RELEASE) && exit $$service

# Planned peak VRAM and pinned host memory per memory profile and resolution (no GPU needed).
memory-plan: deps
	$(PYTHON) -m infinitetalk_engine.infinitetalk.memory_plan $(if $(WEIGHTS),--weights $(WEIGHTS))

bench-engine: deps
	$(PYTHON) bench/engine_bench.py

# What jobs sharing a portrait save (tiny random weights, CPU).
bench-shared: deps
	$(PYTHON) bench/shared_encodings_bench.py

# Four runs, each independent (`-`: one failing does not lose the others' results); planned at about 6 minutes on an H200 (not measured yet).
bench-gpu:
	-python3 bench/gpu_bench.py
	-python3 bench/gpu_bench.py --passes 1 --lora-rank 0
	-python3 bench/gpu_bench.py --profile fp8 --passes 1 --lora-rank 0
	-python3 bench/gpu_bench.py --profile offload --lora-rank 0

clean:
	rm -rf .build $(STAMPS) $(DATA_DIR)
