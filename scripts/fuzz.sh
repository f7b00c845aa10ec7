#!/usr/bin/env bash
# Fuzz the genome contract at scale with fresh (not derandomised) draws: every random genome, and every random
# knob combination on a zoo network, builds and trains a step or is refused with a ValueError naming its field.
# Usage: bash scripts/fuzz.sh [EXAMPLES_PER_FAMILY, default 2500]
set -euo pipefail
cd "$(dirname "$0")/.."
export NASPLAY_FUZZ_EXAMPLES="${1:-2500}" NASPLAY_FUZZ_RANDOM=1 OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
exec .venv/bin/python -m pytest -v -p no:cacheprovider --timeout=0 tests/test_fuzz.py
