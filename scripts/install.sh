#!/usr/bin/env bash
# Install nasrun and everything it needs, skipping what is already present.
#
#   bash scripts/install.sh          # runtime: MPI, venv, torch (CPU), mpi4py, h5py, Horovod, nasrun
#   bash scripts/install.sh --dev    # also test and lint tools and a local SLURM (slurm-wlm, munge)
#
# System packages are installed with apt-get only when they are missing, we are root and apt-get
# exists. On an HPC login node, load your MPI module first: an mpicc on PATH is used as it is and
# apt-get is never called for it.
#
# Environment:
#   NASRUN_VENV         where the virtual environment goes (default: <repo>/.venv)
#   NASRUN_CACHE        where the built Horovod and mpi4py wheels are cached (default: ~/.cache/nasrun)
#   NASRUN_NO_HOROVOD=1 skip Horovod (torch.distributed is then the data-parallel backend)
#   NASRUN_TORCH=keep   keep the torch already in the venv (e.g. a CUDA build on a GPU cluster)
#                       instead of pinning the CPU build torch==2.13.0
#   PYTHON              the interpreter that makes the venv (default: python3)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${NASRUN_VENV:-$HERE/.venv}"
CACHE="${NASRUN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nasrun}"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="2.13.0"
HOROVOD_VERSION="0.28.1"
DEV=0
for arg in "$@"; do
  case "$arg" in
    --dev) DEV=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option '$arg' (expected --dev)" >&2; exit 2 ;;
  esac
done

say() { printf '[install] %s\n' "$*"; }
t0=$(date +%s)

# ---------------------------------------------------------------- system packages
missing=()
have_cmd() { command -v "$1" >/dev/null 2>&1; }
have_cmd "$PYTHON" || missing+=(python3)
"$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
have_cmd g++ || missing+=(g++)
have_cmd make || missing+=(make)
if ! have_cmd mpicc || ! have_cmd mpirun; then
  missing+=(openmpi-bin libopenmpi-dev)
fi
if [ -n "$("$PYTHON" -c 'import sysconfig,os;p=sysconfig.get_paths()["include"];print("" if os.path.exists(os.path.join(p,"Python.h")) else "x")' 2>/dev/null || echo x)" ]; then
  missing+=(python3-dev)
fi
if [ "$DEV" = 1 ]; then
  have_cmd slurmctld || missing+=(slurm-wlm)
  have_cmd munged || missing+=(munge)
  have_cmd h5ls || missing+=(hdf5-tools)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && have_cmd apt-get; then
    say "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "install.sh: missing system packages: ${missing[*]}" >&2
    echo "  install them (or load the site's modules, e.g. 'module load openmpi') and run again" >&2
    exit 1
  fi
else
  say "system packages present"
fi
say "MPI: $(command -v mpicc) ($(mpirun --version 2>/dev/null | head -n1))"

# ---------------------------------------------------------------- virtual environment
if [ ! -x "$VENV/bin/python" ]; then
  say "creating venv $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
pip_install() { "$PY" -m pip install -q --disable-pip-version-check "$@"; }
torch_is() { "$PY" -c "import importlib.metadata as m,sys; sys.exit(m.version('torch').split('+')[0] != '$1')" 2>/dev/null; }

if [ "${NASRUN_TORCH:-}" = keep ] && "$PY" -c 'import torch' 2>/dev/null; then
  say "torch $("$PY" -c 'import torch;print(torch.__version__)') kept (NASRUN_TORCH=keep)"
else torch_is "$TORCH_VERSION" || { say "torch $TORCH_VERSION (CPU build)"; pip_install "torch==$TORCH_VERSION"; }
fi
# mpi4py compiles against the MPI found above: its wheel is cached per MPI (path and version).
pyver=$("$PY" -c 'import sys;print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
mpiver=$(mpirun --version 2>/dev/null | head -n1 | tr -cd '0-9.')
mpitag="mpi$mpiver-$(command -v mpicc | md5sum | cut -c1-8)-$(uname -m)"
if ! "$PY" -c 'import mpi4py' 2>/dev/null; then
  wheeldir="$CACHE/wheels/mpi4py-$pyver-$mpitag"
  if ! ls "$wheeldir"/mpi4py-*.whl >/dev/null 2>&1; then
    say "building mpi4py against $(command -v mpicc); cache: $wheeldir"
    rm -rf "$wheeldir.tmp" && mkdir -p "$wheeldir.tmp"
    "$PY" -m pip wheel -q --no-cache-dir --no-deps mpi4py -w "$wheeldir.tmp"
    rm -rf "$wheeldir" && mv "$wheeldir.tmp" "$wheeldir"
  else
    say "mpi4py wheel from cache $wheeldir"
  fi
  pip_install --no-deps "$wheeldir"/mpi4py-*.whl
fi
# nasrun itself, editable; skipped when this checkout is already installed with what is asked
# for (so a user without write access to a shared venv can run this too).
probe='import os, nasrun, click, yaml, h5py, rich, sklearn, matplotlib, safetensors
assert os.path.realpath(os.path.dirname(nasrun.__file__)) == os.path.realpath(os.environ["NASRUN_HERE"] + "/nasrun")'
[ "$DEV" = 1 ] && probe="$probe
import pytest, hypothesis, scipy, spython, ruff, mypy, importlib.metadata
importlib.metadata.version(\"types-PyYAML\")"
if NASRUN_HERE="$HERE" "$PY" -c "$probe" 2>/dev/null; then
  say "nasrun present (editable, $HERE)"
else
  say "nasrun (editable)$( [ "$DEV" = 1 ] && echo ' with test tools')"
  pip_install -e "$HERE$( [ "$DEV" = 1 ] && echo '[dev]' )"
fi

# ---------------------------------------------------------------- Horovod from the sdist
if [ "${NASRUN_NO_HOROVOD:-0}" = 1 ]; then
  say "Horovod skipped (NASRUN_NO_HOROVOD=1); torch.distributed will be used"
elif "$PY" -c 'import horovod.torch' 2>/dev/null; then
  say "Horovod present"
else
  torchver=$("$PY" -c 'import torch;print(torch.__version__)')
  key="horovod-$HOROVOD_VERSION-torch$torchver-$pyver-$mpitag"
  wheeldir="$CACHE/wheels/$key"
  if ! ls "$wheeldir"/horovod-*.whl >/dev/null 2>&1; then
    say "building Horovod $HOROVOD_VERSION from the sdist (about 8 minutes on 2 cores); cache: $wheeldir"
    pip_install cmake wheel packaging
    build=$(mktemp -d)
    trap 'rm -rf "$build"' EXIT
    "$PY" -m pip download -q --no-deps --no-binary :all: "horovod==$HOROVOD_VERSION" -d "$build"
    tar -xzf "$build"/horovod-*.tar.gz -C "$build"
    src=$(ls -d "$build"/horovod-*/)
    # PyTorch 2.x headers need C++17; Horovod 0.28.1 asks for C++14.
    sed -i 's/set(CMAKE_CXX_STANDARD 14)/set(CMAKE_CXX_STANDARD 17)/' "$src/CMakeLists.txt" "$src/horovod/torch/CMakeLists.txt"
    grep -q 'CMAKE_CXX_STANDARD 17' "$src/horovod/torch/CMakeLists.txt"
    mkdir -p "$wheeldir.tmp"
    HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_MPI=1 HOROVOD_WITHOUT_TENSORFLOW=1 \
      HOROVOD_WITHOUT_MXNET=1 MAKEFLAGS="-j$(nproc)" \
      "$PY" -m pip wheel -q --no-build-isolation --no-deps "$src" -w "$wheeldir.tmp"
    rm -rf "$wheeldir" && mv "$wheeldir.tmp" "$wheeldir"
  else
    say "Horovod wheel from cache $wheeldir"
  fi
  pip_install --no-deps "$wheeldir"/horovod-*.whl
  # Horovod's own runtime dependencies (we skip its 'horovodrun' extras)
  pip_install cloudpickle psutil pyyaml packaging cffi
fi

say "done in $(( $(date +%s) - t0 )) s; activate with: source $VENV/bin/activate"
