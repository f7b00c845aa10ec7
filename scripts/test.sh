#!/usr/bin/env bash
# Install nasplay with its test tools into .venv and run the test suite.
# Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
# PYTHONUNBUFFERED: pytest's progress reaches a piped log (CI's) as it happens, not at exit.
export OMP_WAIT_POLICY=PASSIVE WANDB_MODE=offline WANDB_SILENT=true PYTHONUNBUFFERED=1
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# The pinned versions (constraints.txt, written by scripts/pin.py): CI tests what the README installs.
.venv/bin/python -m pip install -q -c constraints.txt -e ".[dev]"
# A real PostgreSQL server on loopback for the multi-host storage tests (they skip, saying why, without one).
if [ -z "${NASPLAY_TEST_POSTGRES_URL:-}" ]; then
    NASPLAY_TEST_POSTGRES_URL=$(bash scripts/postgres.sh) || true
    export NASPLAY_TEST_POSTGRES_URL
fi
# pytest exits 5 when it collects nothing: set -e turns that into a failure too.
.venv/bin/python -m pytest -q "$@"
