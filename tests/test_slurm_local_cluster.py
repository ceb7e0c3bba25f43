"""slurm/local-cluster.sh on its own (a second cluster in another directory and port)."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from slurm_support import CLUSTER_SCRIPT, wait_for

pytestmark = pytest.mark.slurm


def cluster(cmd, d, port="16937"):
    return subprocess.run(["bash", CLUSTER_SCRIPT, cmd, str(d)], capture_output=True, text=True, timeout=90,
                          env=dict(os.environ, NASRUN_SLURM_PORT=port))


def pids(d):
    run = d / "run"
    return {p.stem: int(p.read_text()) for p in run.glob("*.pid")} if run.exists() else {}


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def test_start_is_idempotent_survives_stale_state_and_stop_kills_its_daemons(tmp_path):
    if shutil.which("slurmctld") is None:
        pytest.fail("slurmctld is not installed: run scripts/install.sh --dev")
    d = tmp_path / "cluster"
    try:
        p = cluster("start", d)
        assert p.returncode == 0, p.stderr
        assert p.stdout.strip() == f"export SLURM_CONF={d}/slurm.conf"
        first = pids(d)
        assert set(first) == {"munged", "slurmctld", "slurmd"} and all(map(alive, first.values()))
        again = cluster("start", d)
        assert again.returncode == 0 and "already running" in again.stderr and pids(d) == first
        assert cluster("status", d).returncode == 0
        env = dict(os.environ, SLURM_CONF=f"{d}/slurm.conf")
        out = subprocess.run(["sbatch", "--parsable", "-o", str(tmp_path / "w.out"), "--wrap", "echo hi"],
                             env=env, capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        wait_for(lambda: (tmp_path / "w.out").exists() and "hi" in (tmp_path / "w.out").read_text(), 30,
                 "the job output")
        # a crashed controller leaves a stale pid file and job state behind
        os.kill(first["slurmctld"], 9)
        wait_for(lambda: not alive(first["slurmctld"]), 10, "slurmctld to die")
        assert cluster("status", d).returncode == 1
        p = cluster("start", d)
        assert p.returncode == 0, p.stderr
        second = pids(d)
        assert all(map(alive, second.values())) and second["slurmctld"] != first["slurmctld"]
    finally:
        cluster("stop", d)
    assert pids(d) == {}
    for pid in list(first.values()) + list(second.values()):
        wait_for(lambda pid=pid: not alive(pid), 15, f"daemon {pid} to stop")
