#!/usr/bin/env bash
# The fuzz suite (tests/fuzz) with a long budget and fresh random inputs on every run; CI runs the same properties
# with FUZZ_EXAMPLES=200, derandomized. Usage: scripts/fuzz.sh [examples per property] [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
export FUZZ_EXAMPLES="${1:-20000}"
shift || true
export FUZZ_RANDOM=1
exec .venv/bin/pytest -q tests/fuzz -p no:cacheprovider --timeout=0 --hypothesis-show-statistics "$@"
