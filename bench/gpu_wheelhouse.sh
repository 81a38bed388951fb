#!/usr/bin/env bash
# Prepare, on a machine WITH network, everything bench/gpu_machine.sh installs on a GPU machine WITHOUT network:
#   bench/gpu_wheelhouse.sh [DIR]        (default .cache/gpu-wheelhouse; or $ARGUS_GPU_WHEELHOUSE)
#
# Into DIR, as CPython 3.11 manylinux x86_64 wheels (whatever this machine runs):
#   - the project wheel (argus-watch, built from this checkout) and its whole dependency closure with the
#     kafka, triton and mongo extras (tritonclient[grpc] among them);
#   - onnxruntime-gpu with its CUDA 12 / cuDNN 9 runtime wheels (the [cuda,cudnn] extras) and faiss-gpu-cu12
#     with its CUDA wheels (checked on PyPI, 2026-12-01: onnxruntime-gpu 1.31.1 and faiss-gpu-cu12 1.14.1.post1
#     both ship cp311 manylinux wheels);
#   - what argus_dev.devservers puts in the Triton venv the `models` area starts (nvidia-pytriton, onnxruntime,
#     numpy<2: REQUIREMENTS in src/argus_dev/devservers/triton.py), resolved separately because it pins numpy<2.
# Expect a few GB (the CUDA wheels): copy DIR to the GPU machine (or mount it) and point gpu_machine.sh at it.
set -euo pipefail
cd "$(dirname "$0")/.."
WH="${1:-${ARGUS_GPU_WHEELHOUSE:-.cache/gpu-wheelhouse}}"
PY="${PYTHON:-.venv/bin/python}"
mkdir -p "$WH"
WH="$(cd "$WH" && pwd)"
TARGET=(--only-binary=:all: --python-version 3.11 --implementation cp --abi cp311
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
        --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 --platform linux_x86_64)

echo "== project wheel -> $WH"
rm -f "$WH"/argus_watch-*.whl
"$PY" -m pip wheel --no-deps --wheel-dir "$WH" . >/dev/null
WHEEL="$(ls "$WH"/argus_watch-*.whl | head -n 1)"
echo "   $WHEEL"

echo "== the project's dependencies (with the kafka, triton and mongo extras) and the GPU packages"
# pip download needs abi3/none wheels to be allowed too: --abi cp311 plus --only-binary still accepts py3-none-any.
"$PY" -m pip download "${TARGET[@]}" --abi abi3 --abi none --dest "$WH" \
    "${WHEEL}[kafka,triton,mongo]" "onnxruntime-gpu[cuda,cudnn]" faiss-gpu-cu12 "tritonclient[grpc]"

echo "== the devservers' Triton venv (nvidia-pytriton)"
REQS="$("$PY" -c 'from argus_dev.devservers.triton import REQUIREMENTS; print(" ".join(REQUIREMENTS))')"
# shellcheck disable=SC2086  # the requirements are whitespace-free specifiers
"$PY" -m pip download "${TARGET[@]}" --abi abi3 --abi none --dest "$WH" $REQS

echo "== done: $(ls "$WH" | wc -l) files, $(du -sh "$WH" | cut -f1) in $WH"
echo "   on the GPU machine: bench/gpu_machine.sh $WH"
