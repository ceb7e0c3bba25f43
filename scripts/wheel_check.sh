#!/usr/bin/env bash
# nasrun as a user who installed the wheel gets it: build the wheel, install it (not editable)
# into a fresh virtual environment, and from a directory outside the repository run
# `nasrun --version`, `init`, `validate`, `submit --dry-run` and a 3-trial run in one process.
#
# The dependencies (torch, mpi4py, h5py, ...) are not installed again: the fresh environment
# sees the project environment's site-packages through a .pth file, after its own, so nothing is
# downloaded and nasrun itself can only come from the wheel (the script checks where it comes
# from). A few tens of seconds, most of it the 3 trials.
#
#   bash scripts/wheel_check.sh        (NASRUN_VENV: the environment with the dependencies)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${NASRUN_VENV:-$ROOT/.venv}/bin/python"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/nasrun-wheel.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
start=$(date +%s)
step() { echo "wheel_check: $*"; }
fail() { echo "wheel_check: FAILED: $*" >&2; exit 1; }

# 1. the wheel, built from a copy of the sources (no stale build/ of the checkout goes into it)
mkdir -p "$WORK/src" "$WORK/dist" "$WORK/user"
tar -C "$ROOT" --exclude=__pycache__ -cf - nasrun setup.cfg pyproject.toml README.md | tar -C "$WORK/src" -xf -
"$PY" -m pip wheel --no-deps --no-build-isolation --no-index -q -w "$WORK/dist" "$WORK/src"
WHEEL="$(ls "$WORK"/dist/nasrun-*.whl)"
step "built $(basename "$WHEEL")"

# 2. a fresh environment: nasrun from the wheel only; the dependencies from the project's
# environment, after the wheel's files on sys.path
"$PY" -m venv --without-pip "$WORK/venv"
V="$WORK/venv/bin"
"$PY" -m pip --python "$V/python" install --no-deps --no-index -q "$WHEEL"
DEPS="$("$PY" -c 'import sysconfig; p = sysconfig.get_paths(); print(p["purelib"]); print(p["platlib"])' | sort -u)"
OWN="$("$V/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$DEPS" > "$OWN/nasrun_wheel_check_deps.pth"

# 3. from another directory, the repository nowhere on sys.path
cd "$WORK/user"
unset PYTHONPATH
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
"$V/python" - "$OWN" "$ROOT" <<'EOF' || fail "nasrun is not imported from the wheel"
import os
import sys
import nasrun
own, root = sys.argv[1], sys.argv[2]
assert nasrun.__file__.startswith(own + "/"), nasrun.__file__
others = [p for p in sys.path if os.path.isdir(os.path.join(p or ".", "nasrun")) and p != own]
assert root not in sys.path and not others, (root, others)
EOF
version="$("$V/nasrun" --version)" && [[ "$version" == "nasrun, version "* ]] || fail "nasrun --version"
step "$version from $OWN"
"$V/nasrun" init --list > list.out
grep -q "^default " list.out || fail "init --list does not list default: $(cat list.out)"
"$V/nasrun" init > /dev/null
"$V/nasrun" validate nasrun.yaml > /dev/null
"$V/nasrun" init --example default default.yaml > /dev/null
"$V/nasrun" validate default.yaml > /dev/null
step "init (starter, --example default) and validate: ok"
"$V/nasrun" submit --dry-run default.yaml > submit.out
grep -q "^#SBATCH --nodes=" submit.out && grep -q "^# would write .*/slurm/job.sh and run: sbatch" submit.out \
  || fail "submit --dry-run did not render the batch script: $(cat submit.out)"
step "submit --dry-run: ok ($(wc -l < submit.out) lines)"
# a login node without PyTorch, MPI or Horovod: the same commands with those unimportable
for cmd in "validate default.yaml" "submit --dry-run default.yaml"; do
  # shellcheck disable=SC2086
  "$V/python" -c "import sys
class Blocked:  # first on sys.meta_path: these imports fail as on a machine without them
    def find_spec(self, name, path=None, target=None):
        if name.partition('.')[0] in ('torch', 'mpi4py', 'horovod'):
            raise ModuleNotFoundError(f'No module named {name!r}', name=name)
sys.meta_path.insert(0, Blocked())
from nasrun.cli import main; main(prog_name='nasrun')" $cmd > /dev/null || fail "$cmd without torch"
done
step "validate and submit --dry-run without torch, mpi4py and horovod: ok"
sed -i 's/^  max_trials: 20$/  max_trials: 3/; s/^  epochs: 10$/  epochs: 2/' default.yaml
grep -q "^  max_trials: 3$" default.yaml || fail "could not set max_trials in default.yaml"
"$V/nasrun" run default.yaml > run.out 2>&1 || fail "nasrun run (exit $?): $(tail -20 run.out)"
grep -q "3 trials" run.out || fail "the run did not report 3 trials: $(tail -20 run.out)"
"$V/nasrun" status runs/digits-default --json | "$V/python" -c '
import json, sys
t = json.load(sys.stdin)["trials"]
assert t["done"] + t["failed"] == 3 and t["done"] >= 1, t' || fail "status after the run"
step "3-trial run: $(grep "^finished" run.out || tail -1 run.out)"
echo "wheel_check: ok in $(( $(date +%s) - start )) s"
