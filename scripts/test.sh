#!/usr/bin/env bash
# The whole test suite: lint, types, unit, contract (memory and real servers), integration and end-to-end.
# Real servers (Kafka, Triton, MongoDB-wire, Prometheus) are installed on first use into .cache/servers and
# started/stopped by the test session itself (tests/servers.py). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
.venv/bin/ruff check src services tests tools bench
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
