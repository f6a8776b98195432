#!/usr/bin/env bash
# Download the pure-Python wheels the GPU bench needs but the lent GPU machine lacks (it has Python 3.12, torch,
# transformers, scikit-image, huggingface-hub, safetensors, opencv, but no diffusers and no PyAV) into .whl/ at the repo
# root (about 40 MB; a run may carry 64 MiB).
# Carry `.whl` with the run; `bench/gpu_bench.py` installs them into a temporary folder when diffusers is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
PYTHON=${PYTHON:-.venv/bin/python}
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl diffusers==0.42.1 importlib_metadata==10.2.0 zipp==4.1.2 av==18.1.0
ls -l .whl
