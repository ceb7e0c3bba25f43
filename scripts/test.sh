#!/usr/bin/env bash
# Install what is missing (with the test tools and a local SLURM), then run the whole test suite.
#   bash scripts/test.sh [PYTEST ARGS...]      e.g.  bash scripts/test.sh -m "not slurm"
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$HERE/scripts/install.sh" --dev
VENV="${NASRUN_VENV:-$HERE/.venv}"
if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
cd "$HERE"
set +e
"$VENV/bin/python" -m pytest -x -q -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "test.sh: pytest collected no tests for the given selection" >&2
  exit 0
fi
exit "$rc"
