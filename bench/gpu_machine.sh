#!/usr/bin/env bash
# Set up and run the GPU benchmarks on a GPU machine that has NO network, in under 10 minutes:
#   bench/gpu_machine.sh [WHEELHOUSE]     (default $ARGUS_GPU_WHEELHOUSE, else .cache/gpu-wheelhouse)
#
# Prepare WHEELHOUSE first, on a machine with network: bench/gpu_wheelhouse.sh (a few GB of CUDA wheels).
# Run from a checkout of this repository (the models, assets and bench/ are read from it). Steps:
#   1. the machine: nvidia-smi, Python 3.11 (python3.11 or python3), tritonserver on PATH or not;
#   2. a fresh venv installed offline from WHEELHOUSE: the project wheel with its kafka/triton/mongo extras, then
#      onnxruntime-gpu and faiss-gpu-cu12 in place of onnxruntime and faiss-cpu (each pair ships the same module);
#   3. python -m bench --gpu --only gpu models (the models area's Triton is the dev harness's CPU one, installed
#      offline from the same WHEELHOUSE; bench/gpu.py starts a production-config tritonserver itself when one with
#      the onnxruntime backend is on PATH, as in the NGC container nvcr.io/nvidia/tritonserver:<yy.mm>-py3).
# Results (results.jsonl, RESULTS.md, the JSON lines, nvidia-smi, pip freeze, the log) go to $OUT when it is set,
# else bench/results/gpu. ARGUS_GPU_QUICK=1 adds --quick (smaller sizes). Each step has a time limit so the whole
# run ends inside 10 minutes, with whatever it measured written out.
set -uo pipefail
cd "$(dirname "$0")/.."
T0=$(date +%s)
WH="${1:-${ARGUS_GPU_WHEELHOUSE:-.cache/gpu-wheelhouse}}"
RES="${OUT:-bench/results/gpu}"
mkdir -p "$RES"
LOG="$RES/gpu_machine.log"
exec > >(tee -a "$LOG") 2>&1
say() { echo "[gpu_machine $(( $(date +%s) - T0 ))s] $*"; }

say "machine: $(uname -srm), $(nproc) cores"
if command -v nvidia-smi >/dev/null; then
    nvidia-smi -L | tee "$RES/nvidia-smi.txt"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >> "$RES/nvidia-smi.txt" || true
else
    say "WARNING: no nvidia-smi: every GPU path will report skipped"
fi
if command -v tritonserver >/dev/null; then
    say "tritonserver: $(command -v tritonserver) (bench/gpu.py checks for the onnxruntime backend)"
else
    say "no tritonserver on PATH: the Triton production configs will report skipped (run in the NGC container)"
fi
PY="$(command -v python3.11 || command -v python3 || true)"
if [ -z "$PY" ] || ! "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    say "ERROR: expected Python 3.11 (the wheelhouse holds cp311 wheels), got ${PY:-none} $("${PY:-false}" -V 2>&1)"
    exit 2
fi
if [ ! -d "$WH" ] || ! ls "$WH"/argus_watch-*.whl >/dev/null 2>&1; then
    # no wheelhouse: a machine provisioned already (the packages importable by this Python) still runs
    if "$PY" -c 'import numpy, cv2, pydantic, pydantic_settings, msgpack, prometheus_client, onnxruntime, faiss' \
            2>/dev/null; then
        say "no wheelhouse at $WH: using $PY and what it has installed (no venv)"
        VPY="$PY"
        SKIP_VENV=1
    else
        say "ERROR: expected a wheelhouse with argus_watch-*.whl at $WH (make it with bench/gpu_wheelhouse.sh), or a" \
            "Python with the project's dependencies and onnxruntime(-gpu) and faiss installed"
        exit 2
    fi
fi
if [ "${SKIP_VENV:-0}" != "1" ]; then
WH="$(cd "$WH" && pwd)"
WHEEL="$(ls "$WH"/argus_watch-*.whl | head -n 1)"

VENV="${ARGUS_GPU_VENV:-${TMPDIR:-/tmp}/argus-gpu-venv}"
say "venv $VENV from $WH (offline)"
rm -rf "$VENV"
"$PY" -m venv "$VENV" || { say "ERROR: python -m venv failed"; exit 2; }
VPY="$VENV/bin/python"
export PIP_NO_INDEX=1 PIP_FIND_LINKS="$WH" PIP_DISABLE_PIP_VERSION_CHECK=1
# the models area's Triton venv (argus_dev.devservers) installs with uv when on PATH, else pip: both offline
export UV_NO_INDEX=1 UV_FIND_LINKS="$WH" UV_OFFLINE=1
timeout 300 "$VPY" -m pip install -q "${WHEEL}[kafka,triton,mongo]" || { say "ERROR: installing the project failed"; exit 2; }
"$VPY" -m pip uninstall -y -q onnxruntime faiss-cpu
timeout 240 "$VPY" -m pip install -q "onnxruntime-gpu[cuda,cudnn]" faiss-gpu-cu12 \
    || { say "ERROR: installing onnxruntime-gpu / faiss-gpu-cu12 failed"; exit 2; }
fi
"$VPY" -m pip freeze > "$RES/pip-freeze.txt" 2>/dev/null || true
"$VPY" - <<'PY' || true
import faiss, onnxruntime as ort
print("onnxruntime", ort.__version__, ort.get_available_providers())
print("faiss", faiss.__version__, "GPUs:", faiss.get_num_gpus())
PY
say "set-up done"

# the checkout's code first (bench/ imports argus_dev and reads triton_models/ from here), the venv for the rest
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"
LEFT=$(( 570 - ( $(date +%s) - T0 ) ))
[ "$LEFT" -lt 60 ] && LEFT=60
QUICK=()
[ "${ARGUS_GPU_QUICK:-0}" = "1" ] && QUICK=(--quick)
say "python -m bench ${QUICK[*]} --gpu --only gpu models (limit ${LEFT}s)"
timeout "$LEFT" "$VPY" -m bench "${QUICK[@]}" --gpu --only gpu models --out "$RES" | tee "$RES/stdout.jsonl"
RC=${PIPESTATUS[0]}
say "bench exit status $RC; results in $RES (results.jsonl, RESULTS.md, stdout.jsonl)"
exit "$RC"
