"""The container recipes (parsed with spython: no container runtime runs here) and the
`apptainer exec` wrapping of each rank in the rendered batch script."""
from __future__ import annotations

import dataclasses
import os
import re
import shlex

import pytest
from slurm_support import REPO
from spython.main.parse.parsers import DockerParser, SingularityParser

from nasrun.slurm.render import nasrun_words
from nasrun.spec import parse_spec

DEF = os.path.join(REPO, "containers", "nasrun.def")
DOCKERFILE = os.path.join(REPO, "containers", "Dockerfile")
INSTALL = os.path.join(REPO, "scripts", "install.sh")


def recipe(parser, path):
    r = parser(path).recipe
    return r if not isinstance(r, dict) else next(iter(r.values()))


def files(r):
    return [tuple(f.split() if isinstance(f, str) else f) for f in r.files]


def install_line(lines):
    found = [ln.strip().rstrip("\\").strip() for ln in lines if "scripts/install.sh" in ln]
    assert len(found) == 1, lines
    return found[0]


def test_definition_file_installs_with_install_sh_on_a_cuda_torch_image():
    r = recipe(SingularityParser, DEF)
    assert re.fullmatch(r"pytorch/pytorch:[\d.]+-cuda[\d.]+-cudnn\d+-devel", r.fromHeader)
    for src, dst in files(r):
        assert os.path.exists(os.path.join(REPO, src)), f"%files copies {src}, which is not in the repository"
        assert dst.startswith("/opt/nasrun/src/")
    copied = {src for src, _ in files(r)}
    assert {"nasrun", "scripts", "setup.cfg", "pyproject.toml"} <= copied
    line = install_line(r.install)
    words = shlex.split(line)
    assert words[-2:] == ["bash", "scripts/install.sh"], "runs the README's installer, without --dev"
    env = dict(w.split("=", 1) for w in words[:-2])
    with open(INSTALL) as f:
        install_sh = f.read()
    for name in ("NASRUN_VENV", "NASRUN_CACHE", "PYTHON"):
        assert name in env and f"{name}:-" in install_sh, f"install.sh does not read {name}"
    assert env.get("NASRUN_TORCH") == "keep"  # keep the image's CUDA torch (install.sh on main)
    # the venv install.sh fills is the one on PATH at run time, and it sees the image's torch
    assert f"--system-site-packages {env['NASRUN_VENV']}" in " ".join(r.install)
    assert f"PATH={env['NASRUN_VENV']}/bin:$PATH" in r.environ
    # Horovod gets the C++17 patch from install.sh itself
    assert "CMAKE_CXX_STANDARD 17" in install_sh and "HOROVOD_WITH_MPI=1" in install_sh
    with open(DEF) as f:  # spython folds %test into the install steps; read the section itself
        test_section = f.read().split("%test", 1)[1]
    assert "horovod.torch" in test_section and "mpi_built" in test_section


def test_dockerfile_has_the_same_base_and_install_steps():
    d = recipe(DockerParser, DOCKERFILE)
    s = recipe(SingularityParser, DEF)
    assert d.fromHeader == s.fromHeader
    assert install_line(d.install) == install_line(s.install)
    assert sorted(src for src, _ in files(d)) == sorted(src for src, _ in files(s))
    assert "PATH=/opt/nasrun/venv/bin:$PATH" in d.environ
    assert d.entrypoint == ["nasrun"] or d.entrypoint == "nasrun"


BASE = "experiment: {name: exp}\nspace: {builtin: chain}\nslurm:\n"


@pytest.mark.parametrize("slurm, expected", [
    ("  container: /img/nasrun.sif\n",
     "srun --mpi=pmix apptainer exec /img/nasrun.sif nasrun"),
    ("  container: /img/nasrun.sif\n  gpus_per_node: 4\n  binds: [/data, '/scratch:/scratch:ro']\n",
     "srun --mpi=pmix apptainer exec --nv --bind /data --bind /scratch:/scratch:ro /img/nasrun.sif nasrun"),
    ("  container: '/my images/n.sif'\n  gres: 'gpu:a100:2'\n  container_runtime: singularity\n"
     "  launcher: mpirun\n  python: python3\n",
     "mpirun -np \"$SLURM_NTASKS\" singularity exec --nv '/my images/n.sif' python3 -m nasrun"),
    ("  container: x.sif\n  gres: 'nvme:1'\n", "srun --mpi=pmix apptainer exec x.sif nasrun"),
    ("  gpus_per_node: 2\n", "srun --mpi=pmix nasrun"),
])
def test_each_rank_runs_inside_the_container(slurm, expected):
    spec = parse_spec(BASE + slurm)
    assert " ".join(nasrun_words(spec.slurm)) == expected


def test_container_values_are_quoted():
    s = parse_spec(BASE + "  container: x.sif\n").slurm
    s = dataclasses.replace(s, container="$(id).sif", binds=["a b:/c"])
    assert nasrun_words(s)[-3:] == ["'a b:/c'", "'$(id).sif'", "nasrun"]
