#!/usr/bin/env bash
# Static security scan of terraform/ with checkov, in a virtual environment of its own.
#
# checkov depends on bc-python-hcl2, which installs a module named `hcl2` that would shadow
# python-hcl2 (used by tests/test_terraform.py) in the project's .venv, so checkov never goes
# there. The venv lives under build/ (git- and ruff-ignored) and is reused across runs; the
# checkov version is pinned so a new release cannot change the verdict under us.
#
# Usage: tools/checkov.sh            (from anywhere inside the repository)
#        tools/checkov.sh --install-only   only install (`make install` does, so the scan itself
#                                          needs no network)
#        CHECKOV_VENV=/path tools/checkov.sh   to put the venv elsewhere
# Every finding that is accepted is skipped in place with `#checkov:skip=CKV_...:reason`.
set -euo pipefail

CHECKOV_VERSION="${CHECKOV_VERSION:-3.3.30}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CHECKOV_VENV:-$ROOT/build/venv-checkov}"
PYTHON="${PYTHON:-python3}"

if [[ ! -x "$VENV/bin/checkov" ]] || [[ "$("$VENV/bin/checkov" --version 2>/dev/null)" != "$CHECKOV_VERSION" ]]; then
    echo "checkov.sh: installing checkov $CHECKOV_VERSION into $VENV" >&2
    "$PYTHON" -m venv "$VENV"
    # (pip's notes about unreachable local package indexes are noise here, and filtered out)
    "$VENV/bin/python" -m pip install --quiet --upgrade pip 2>&1 | { grep -v "neither a file nor a directory" || true; }
    "$VENV/bin/python" -m pip install --quiet "checkov==$CHECKOV_VERSION" 2>&1 | { grep -v "neither a file nor a directory" || true; }
fi
if [[ "${1:-}" == "--install-only" ]]; then
    exit 0
fi

cd "$ROOT"
exec "$VENV/bin/checkov" -d terraform --framework terraform --quiet --compact \
    --skip-download "$@"
