"""Shared helpers of the SLURM tests: the local cluster fixture, nasrun as a subprocess, waits."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from store_view import load_view

from nasrun.store import DONE

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER_SCRIPT = os.path.join(REPO, "slurm", "local-cluster.sh")
PROG = os.path.join(REPO, "tests", "slurm_prog.py")


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running one-node cluster (slurm/local-cluster.sh); yields the environment for clients.

    Fails (does not skip) when SLURM is not installed: CI installs it with install.sh --dev."""
    missing = [c for c in ("slurmctld", "slurmd", "munged", "sbatch") if shutil.which(c) is None]
    if missing:
        pytest.fail(f"SLURM is not installed (missing {', '.join(missing)}): run scripts/install.sh --dev")
    cluster_dir = os.environ.get("NASRUN_SLURM_DIR", "/tmp/nasrun-slurm")
    was_running = subprocess.run(["bash", CLUSTER_SCRIPT, "status", cluster_dir], capture_output=True,
                                 timeout=30).returncode == 0
    p = subprocess.run(["bash", CLUSTER_SCRIPT, "start", cluster_dir], capture_output=True, text=True,
                       timeout=90)
    if p.returncode != 0:
        pytest.fail(f"local cluster did not start:\n{p.stdout}\n{p.stderr}")
    env = dict(os.environ, SLURM_CONF=os.path.join(cluster_dir, "slurm.conf"),
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])))
    env.pop("NASRUN_SLURM_RESUBMIT", None)
    yield env
    if not was_running:
        subprocess.run(["bash", CLUSTER_SCRIPT, "stop", cluster_dir], capture_output=True, timeout=60)


def nasrun(args, cwd, env, timeout=60, check=True):
    p = subprocess.run([sys.executable, "-m", "nasrun", *args], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"nasrun {' '.join(args)} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


def wait_for(predicate, timeout, what, interval=0.3):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def finished_trials(exp_dir):
    """Ids of the finished trials in the experiment's checkpoint, in trial order (a repeated id
    fails)."""
    snap = load_view(exp_dir)
    assert snap is not None, f"no checkpoint in {exp_dir}"
    ids = [r.trial_id for r in snap.trials]
    assert len(ids) == len(set(ids)), f"duplicate trial ids {ids}"
    return [r.trial_id for r in snap.trials if r.status == DONE]


def wait_finished(exp_dir, n, timeout):
    """Wait until the checkpoint holds ``n`` finished trials (a checkpoint not yet written, or
    read while being replaced, counts as not yet)."""
    def enough():
        try:
            return len(finished_trials(exp_dir)) >= n
        except (OSError, KeyError, AssertionError):
            return False
    wait_for(enough, timeout, f"{n} finished trials in the checkpoint")


def events(exp_dir):
    path = os.path.join(exp_dir, "slurm-jobs.json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def chain_done(exp_dir):
    """True once the chain has ended: the last job's exit was not 75, or no job follows it."""
    ev = events(exp_dir)
    if not ev or ev[-1]["event"] not in ("exit", "limit", "skipped"):
        return False
    last = ev[-1]
    return last["event"] in ("limit", "skipped") or last.get("code") != 75 or \
        os.path.exists(os.path.join(exp_dir, "slurm-cancelled"))


def job_output(exp_dir):
    d = os.path.join(exp_dir, "slurm")
    out = []
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if name.endswith(".out"):
            with open(os.path.join(d, name), errors="replace") as f:
                out.append(f"== {name}\n{f.read()}")
    return "\n".join(out)


def write_spec(path, name, slurm_lines, extra=""):
    with open(path, "w") as f:
        f.write(f"experiment: {{name: {name}}}\nspace: {{builtin: chain}}\n{extra}slurm:\n")
        for line in slurm_lines:
            f.write(f"  {line}\n")
    return path
