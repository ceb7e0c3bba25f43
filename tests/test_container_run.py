"""The image for real: containers/build.sh builds it (or reuses its cache), the host's mpirun and
the local SLURM cluster start every rank inside it with Charliecloud's ch-run, and the host's
nasrun reads and continues what the ranks in the image checkpointed. Fails, not skips, when the
image cannot be built (the session fixture builds it; a cold build takes several minutes)."""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import textwrap

import pytest
import yaml
from slurm_support import (
    REPO,
    chain_done,
    events,
    finished_trials,
    job_output,
    nasrun,
    slurm_cluster,
    wait_finished,
    wait_for,
)

from nasrun.slurm.render import container_words
from nasrun.spec import parse_spec

pytestmark = pytest.mark.container
__all__ = ["slurm_cluster"]

BUILD = os.path.join(REPO, "containers", "build.sh")
MARKER = "/etc/nasrun-image"  # build.sh writes it into the image: "nasrun-image <inputs hash>"


@pytest.fixture(scope="session")
def image():
    """The SquashFS image's path: the last line build.sh prints."""
    p = subprocess.run(["bash", BUILD], capture_output=True, text=True, timeout=3600)
    if p.returncode != 0:
        pytest.fail(f"containers/build.sh exited {p.returncode}:\n{p.stdout}\n{p.stderr[-4000:]}")
    path = p.stdout.strip().splitlines()[-1]
    assert path.endswith(".sqfs") and os.path.isfile(path), p.stdout
    return path


def ch_run_env():
    return dict(os.environ, USER=os.environ.get("USER") or "root", OMPI_ALLOW_RUN_AS_ROOT="1",
                OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1")


def in_image(image, *cmd, binds=()):
    return subprocess.run(["ch-run", "--set-env", *(f"--bind={b}" for b in binds), image, "--", *cmd],
                          capture_output=True, text=True, timeout=120, env=ch_run_env())


def marker(image):
    p = in_image(image, "cat", MARKER)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("nasrun-image ") and not os.path.exists(MARKER), \
        "the marker must exist in the image only"
    return p.stdout


def test_image_has_nasrun_mpi4py_and_horovod_from_install_sh(image):
    p = in_image(image, "python", "-c", "import sys, torch, mpi4py, h5py, horovod.torch as hvd, nasrun; "
                 "assert hvd.mpi_built(); print(sys.prefix, torch.__version__, nasrun.__file__)")
    assert p.returncode == 0, p.stderr
    prefix, torch_version, nasrun_file = p.stdout.split()
    assert prefix == "/opt/nasrun/venv" and nasrun_file.startswith("/opt/nasrun/src/nasrun/")
    assert torch_version.startswith("2.13.0")
    release = in_image(image, "cat", "/etc/os-release").stdout
    assert 'VERSION_CODENAME=bookworm' in release


def tiny_default(out_dir, max_trials):
    """configs/default.yaml (the embedded default search) with a small budget, checkpointing to
    ``out_dir``."""
    with open(os.path.join(REPO, "configs", "default.yaml")) as f:
        spec = yaml.safe_load(f)
    spec["experiment"]["output_dir"] = out_dir
    spec["budget"]["max_trials"] = max_trials
    spec["objective"]["epochs"] = 2
    spec["checkpoint"] = {"every_seconds": 1}
    return yaml.safe_dump(spec)


def test_mpirun_on_the_host_runs_every_rank_in_the_image_and_the_host_resumes(image, tmp_path):
    # the experiment directory is the host's tmp_path/bound, seen in the image as /scratch
    bound = tmp_path / "bound"
    bound.mkdir()
    (bound / "spec.yaml").write_text(tiny_default("/scratch/exp", 12))
    rank_cmd = textwrap.dedent(f"""\
        cat {MARKER} /etc/os-release > /scratch/rank-$OMPI_COMM_WORLD_RANK.txt || exit 9
        cd /scratch && exec nasrun run /scratch/spec.yaml""")
    # each rank as `nasrun submit` renders it for charliecloud (the signal wrapper included)
    s = parse_spec(f"experiment: {{name: x}}\nspace: {{builtin: chain}}\nslurm:\n  container: {image}\n"
                   f"  container_runtime: charliecloud\n  binds: ['{bound}:/scratch']\n").slurm
    line = " ".join(["exec", "mpirun", "--oversubscribe", "-np", "3", *container_words(s, image), "sh", "-c",
                     shlex.quote(rank_cmd)])
    job = subprocess.Popen(["bash", "-c", line], env=ch_run_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, cwd=str(tmp_path))
    exp = str(bound / "exp")
    try:
        wait_finished(exp, 2, 240)
        job.send_signal(signal.SIGUSR1)  # mpirun forwards it to every rank: rank 0 checkpoints
        out, _ = job.communicate(timeout=120)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
    assert job.returncode == 75, out  # checkpointed, resumable
    image_marker = marker(image)
    for rank in range(3):
        recorded = (bound / f"rank-{rank}.txt").read_text()
        assert recorded.startswith(image_marker) and "VERSION_CODENAME=bookworm" in recorded
    before = finished_trials(exp)
    assert 2 <= len(before) < 12
    # the host's nasrun (this checkout, not the image's) continues the checkpoint to the end
    env = dict(ch_run_env(), PYTHONPATH=REPO)
    p = subprocess.run([sys.executable, "-m", "nasrun", "resume", exp, "--groups", "2"], env=env,
                       capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    assert finished_trials(exp) == list(range(12))
    status = subprocess.run([sys.executable, "-m", "nasrun", "status", exp, "--json"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr
    assert '"digits-default"' in status.stdout


OBJECTIVE = '''\
"""Sleeps, records where it ran (the image's marker), scores deterministically."""
import json, os, time

def score(config, context):
    with open("/etc/nasrun-image") as f:
        where = f.read()
    with open(os.path.join(os.environ["NASRUN_TEST_RECORD"], f"{os.getpid()}.txt"), "w") as f:
        f.write(where)
    time.sleep(float(os.environ["NASRUN_TEST_SLEEP"]))
    text = json.dumps(config, sort_keys=True, default=str)
    return {"valid_accuracy": (sum(map(ord, text)) % 997) / 997.0}
'''


@pytest.mark.slurm
@pytest.mark.slow
def test_slurm_job_in_the_image_checkpoints_resubmits_and_finishes(image, tmp_path, slurm_cluster):
    # paths under /tmp: ch-run binds the host's /tmp, so the job's files have the same path inside
    assert str(tmp_path).startswith("/tmp/")
    (tmp_path / "container_objective.py").write_text(OBJECTIVE)
    record = tmp_path / "record"
    record.mkdir()
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"""experiment: {{name: ch-signal, seed: 1}}
space:
  params:
    x: {{type: float, low: 0.0, high: 1.0}}
    k: [a, b, c]
strategy: {{name: random}}
objective:
  type: function
  function: container_objective:score
  python_path: [{tmp_path}]
budget: {{max_trials: 12}}
checkpoint: {{every_seconds: 1}}
slurm:
  tasks_per_node: 3
  time: "10"
  signal_lead: 60
  max_resubmits: 10
  container: {image}
  container_runtime: charliecloud
""")
    exp = str(tmp_path / "runs" / "ch-signal")
    env = dict(slurm_cluster, NASRUN_TEST_SLEEP="2", NASRUN_TEST_RECORD=str(record), USER="root")
    nasrun(["submit", str(spec)], str(tmp_path), env)
    first = events(exp)[0]["job_id"]

    wait_finished(exp, 2, 180)
    subprocess.run(["scancel", "--batch", "--signal=USR1", first], env=env, check=True, timeout=30)
    wait_for(lambda: chain_done(exp), 400, "the chain to finish the budget")
    exits = [e for e in events(exp) if e["event"] == "exit"]
    assert len(exits) >= 2 and exits[0]["code"] == 75 and exits[0]["signalled"] == 1, job_output(exp)
    assert exits[-1]["code"] == 0, job_output(exp)
    assert finished_trials(exp) == list(range(12))  # none lost, none repeated
    assert f"resume {exp}" in job_output(exp), job_output(exp)
    # the launcher line each job printed: every rank is ch-run of the image, in the job's directory
    assert job_output(exp).count(f"ch-run ch-run --set-env --cd={tmp_path} {image} -- nasrun ") == len(exits)
    # every trial ran in the image: each worker process recorded the image's marker
    image_marker = marker(image)
    recorded = [p.read_text() for p in record.iterdir()]
    assert len(recorded) >= 2 and all(r == image_marker for r in recorded)
