#!/usr/bin/env bash
# The GPU check in one command: environment, the GPU tests, Lightning vs a raw loop, trials sharing one GPU,
# and one real study, each step under its own time limit, all in at most 8 minutes; a summary (JSON and
# markdown, failures with their tracebacks) is written whatever fails. Exits non-zero when a step failed.
#
#   bash scripts/device_check.sh [OUTDIR]              # on a GPU machine: writes to OUTDIR, else $OUT, else runs/device_check/<time>
#   bash scripts/device_check.sh --dry-run [OUTDIR]    # every step on the CPU at tiny sizes (a test runs this)
#   bash scripts/device_check.sh --prepare [--python 3.12,3.11]   # here, with PyPI: the wheels the device needs, into .wheels/
#
# The device has torch, Lightning, timm, scipy and matplotlib and no network: nasplay's other dependencies come
# from .wheels/ (git-ignored; carry it with the tree), installed with pip --no-index. nasplay itself runs from
# this tree (PYTHONPATH). PYTHON picks the interpreter (default: python3). See scripts/device_check.py.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
PY="${PYTHON:-python3}"
args=()
out=""
for a in "$@"; do
    case "$a" in
        --prepare|--dry-run|--python|--python=*|--wheels|--wheels=*|--work|--work=*|--budget|--budget=*|--out|--out=*|-h|--help) args+=("$a") ;;
        -*) args+=("$a") ;;
        *) if [[ ${#args[@]} -gt 0 && "${args[-1]}" =~ ^--(python|wheels|work|budget|out)$ ]]; then args+=("$a"); else out="$a"; fi ;;
    esac
done
[[ -n "$out" ]] && args+=(--out "$out")
if ! command -v "$PY" >/dev/null; then
    echo "device_check: no python interpreter '$PY' (set PYTHON)" >&2
    exit 2
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# The helper keeps to its own budget (470 s; the dry run 170 s); this outer limit only catches a hang of the helper itself.
exec timeout --kill-after=15 540 "$PY" scripts/device_check.py "${args[@]}"
