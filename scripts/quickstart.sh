#!/usr/bin/env bash
# Install what is missing, then run the embedded default search: scikit-learn's bundled digits,
# 3 MPI ranks (rank 0 searches, ranks 1-2 train), 20 trials, a few minutes on 2 cores.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$HERE/scripts/install.sh"
VENV="${NASRUN_VENV:-$HERE/.venv}"
if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
cd "$HERE"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
rc=0
mpirun --oversubscribe -np 3 "$VENV/bin/nasrun" run configs/default.yaml "$@" || rc=$?
# the run's last lines name the experiment and the next commands, relative to this directory
printf 'quickstart: to run them: cd %q && source %q\n' "$HERE" "$VENV/bin/activate"
exit "$rc"
