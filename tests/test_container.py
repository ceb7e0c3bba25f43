"""The container recipes (the Dockerfile parsed with spython, the Apptainer definition by its
sections) and the container wrapping of each rank in the rendered batch script (`apptainer exec`,
`ch-run`). tests/test_container_run.py builds and runs the image for real."""
from __future__ import annotations

import dataclasses
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import pytest
from slurm_support import REPO
from spython.main.parse.parsers import DockerParser

from nasrun.slurm.render import IGNORE_STOP_SIGNALS, container_words, nasrun_words, quote, setup_lines
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
    found = [ln.strip().rstrip("\\").strip() for ln in lines
             if "scripts/install.sh" in ln and not ln.lstrip().startswith("#")]
    assert len(found) == 1, lines
    return found[0]


def dockerfile_args():
    """ARG NAME=DEFAULT lines of the Dockerfile (spython folds them into its install steps)."""
    with open(DOCKERFILE) as f:
        return dict(m.groups() for m in re.finditer(r"^ARG (\w+)=(\S*)", f.read(), re.M))


def def_sections():
    """The definition file: header lines and %sections (spython parses Bootstrap: docker only)."""
    with open(DEF) as f:
        text = "\n".join(ln for ln in f.read().splitlines() if not ln.startswith("#"))
    head, *rest = re.split(r"^%(\w+)[ \t]*$", text, flags=re.M)
    header = dict(ln.split(":", 1) for ln in head.splitlines() if ":" in ln)
    return ({k.strip(): v.strip() for k, v in header.items()},
            {name: body.strip() for name, body in zip(rest[::2], rest[1::2])})


def test_dockerfile_installs_with_install_sh_on_a_cuda_torch_base_by_default():
    r = recipe(DockerParser, DOCKERFILE)
    args = dockerfile_args()
    # one recipe: build.sh passes its Debian 12 base; a site builds on the CUDA PyTorch default
    assert r.fromHeader == args["BASE"]
    assert re.fullmatch(r"pytorch/pytorch:[\d.]+-cuda[\d.]+-cudnn\d+-devel", args["BASE"])
    for src, dst in files(r):
        assert os.path.exists(os.path.join(REPO, src)), f"COPY {src}: not in the repository"
        assert dst.startswith("/opt/nasrun/src/")
    assert {"nasrun", "scripts", "setup.cfg", "pyproject.toml"} <= {src for src, _ in files(r)}
    line = install_line(r.install)
    words = shlex.split(line.split("&&")[0])
    assert words[-2:] == ["bash", "scripts/install.sh"], "runs the README's installer, without --dev"
    env = dict(w.split("=", 1) for w in words[:-2])
    with open(INSTALL) as f:
        install_sh = f.read()
    for name in ("NASRUN_VENV", "NASRUN_CACHE", "PYTHON"):
        assert name in env and f"{name}:-" in install_sh, f"install.sh does not read {name}"
    assert env["PYTHON"] == "$PYTHON" and env["NASRUN_CACHE"] == "$NASRUN_CACHE"
    assert args["PYTHON"] == "/opt/conda/bin/python"  # the PyTorch base's interpreter
    assert env.get("NASRUN_TORCH") == "keep"  # keep the base's CUDA torch; none: the pinned CPU one
    # the venv install.sh fills is the one on PATH at run time, and it sees the base's torch
    assert f"$PYTHON -m venv --system-site-packages {env['NASRUN_VENV']}" in r.install
    assert f"PATH={env['NASRUN_VENV']}/bin:$PATH" in r.environ
    # Horovod gets the C++17 patch from install.sh itself
    assert "CMAKE_CXX_STANDARD 17" in install_sh and "HOROVOD_WITH_MPI=1" in install_sh
    assert 'echo "nasrun-image $NASRUN_IMAGE_ID" > /etc/nasrun-image' in r.install
    assert r.entrypoint == ["nasrun"] or r.entrypoint == "nasrun"


def test_definition_file_wraps_the_built_image_with_the_same_environment():
    header, sections = def_sections()
    assert header["Bootstrap"] == "localimage" and header["From"] == "{{ image }}"
    assert re.fullmatch(r"image=\S+", sections["arguments"])
    d = recipe(DockerParser, DOCKERFILE)
    env = dict(ln.split(None, 1)[1].split("=", 1) for ln in sections["environment"].splitlines())
    docker_env = dict(e.split("=", 1) for e in d.environ)
    assert env["PATH"] == docker_env["PATH"]
    assert env == {k: v for k, v in docker_env.items() if k != "DEBIAN_FRONTEND"}
    assert "post" not in sections and "files" not in sections  # nothing installed twice
    assert "horovod.torch" in sections["test"] and "mpi_built" in sections["test"]
    assert "/etc/nasrun-image" in sections["test"]


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
    ("  container: /img/nasrun.sqfs\n  container_runtime: charliecloud\n",
     "srun --mpi=pmix sh -c 'trap \"\" TERM USR1; exec \"$@\"' ch-run ch-run --set-env /img/nasrun.sqfs "
     "-- nasrun"),
    ("  container: /img/n.sqfs\n  container_runtime: charliecloud\n  launcher: mpirun\n"
     "  binds: [/data, '/scratch:/scratch']\n  gpus_per_node: 1\n  python: python3\n",
     "mpirun -np \"$SLURM_NTASKS\" sh -c 'trap \"\" TERM USR1; exec \"$@\"' ch-run ch-run --set-env "
     "--bind=/data --bind=/scratch:/scratch /img/n.sqfs -- python3 -m nasrun"),
])
def test_each_rank_runs_inside_the_container(slurm, expected):
    spec = parse_spec(BASE + slurm)
    assert " ".join(nasrun_words(spec.slurm)) == expected


def test_container_values_are_quoted():
    s = parse_spec(BASE + "  container: x.sif\n").slurm
    s = dataclasses.replace(s, container="$(id).sif", binds=["a b:/c"])
    assert nasrun_words(s)[-3:] == ["'a b:/c'", "'$(id).sif'", "nasrun"]
    s = dataclasses.replace(s, container_runtime="charliecloud")
    assert nasrun_words(s)[-4:] == ["--bind='a b:/c'", "'$(id).sif'", "--", "nasrun"]
    # ch-run starts in /: the rendered script starts it in the job's working directory
    assert "--cd='/w d'" in nasrun_words(s, workdir="/w d")


def test_charliecloud_wrapper_keeps_ch_run_alive_and_lets_the_command_handle_usr1(tmp_path):
    # what mpirun and SLURM do at the time limit: SIGUSR1 to the whole task (process group); the
    # stand-in for ch-run is a shell that waits for its child, as ch-run of a SquashFS file does
    s = parse_spec(BASE + "  container: x.sqfs\n  container_runtime: charliecloud\n").slurm
    words = container_words(s, "x.sqfs")
    assert words[:5] == ["sh", "-c", quote(IGNORE_STOP_SIGNALS), "ch-run", "ch-run"]
    child = ("import signal, sys, time\n"
             "signal.signal(signal.SIGUSR1, lambda *a: sys.exit(75))\n"
             "open(sys.argv[1], 'w').close()\n"
             "time.sleep(60)\n")
    ready = tmp_path / "ready"
    fake_ch_run = f'{shlex.quote(sys.executable)} -c {shlex.quote(child)} {ready}; exit $?'
    p = subprocess.Popen(["sh", "-c", IGNORE_STOP_SIGNALS, "ch-run", "sh", "-c", fake_ch_run],
                         start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(p.pid, signal.SIGUSR1)
        assert p.wait(timeout=30) == 75  # the parent lived on and passed on the child's exit code
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)


@pytest.mark.parametrize("gpus, image", [("  gpus_per_node: 2\n", "/img/nasrun"), ("", "/img/n.sqfs")])
def test_charliecloud_gpus_are_injected_with_ch_fromhost_into_a_directory_image(gpus, image):
    s = parse_spec(BASE + f"  container: {image}\n  container_runtime: charliecloud\n" + gpus).slurm
    lines = setup_lines(s)
    assert any(f"ch-fromhost --nvidia {image}" in ln for ln in lines) == bool(gpus)
    if gpus:  # only a directory image can take the libraries (a SquashFS one is read-only)
        assert lines[0] == f"if [ -d {image} ]; then" and lines[-1] == "fi"
        script = "\n".join(lines)
        p = subprocess.run(["/bin/bash", "-c", script], capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, PATH="/nonexistent"))
        assert p.returncode == 0  # the image directory does not exist here: nothing is run
