#!/usr/bin/env bash
# Create .venv in the repository root with the `argus` command in it.
#   scripts/setup.sh          embedded mode only (the demo): numpy, OpenCV, ONNX Runtime, FAISS, prometheus-client
#   scripts/setup.sh --dev    + server clients (kafka-python, tritonclient, pymongo) and test tools
# Uses uv (installed from PyPI into the venv) because it resolves and installs ~10x faster than pip.
set -euo pipefail
cd "$(dirname "$0")/.."
extra=""
[ "${1:-}" = "--dev" ] && extra="[dev]"
py="${PYTHON:-python3}"
if ! "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "setup: Python >= 3.11 is required (found $("$py" --version 2>&1))" >&2; exit 1
fi
[ -x .venv/bin/python ] || "$py" -m venv .venv
[ -x .venv/bin/uv ] || .venv/bin/python -m pip install -q --disable-pip-version-check uv
.venv/bin/uv pip install -q -p .venv/bin/python -e ".${extra}"
echo "setup: .venv ready ($(.venv/bin/python --version)); run .venv/bin/argus --help" >&2
