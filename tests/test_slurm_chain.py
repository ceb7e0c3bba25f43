"""The chain file and `nasrun jobs`/`cancel` without a cluster."""
from __future__ import annotations

import os
import sys

from slurm_support import REPO, nasrun

from nasrun.slurm import chain


def test_chain_events_jobs_and_resubmission_count(tmp_path):
    d = str(tmp_path)
    chain.append_event(d, "submitted", "10", 0)
    chain.append_event(d, "start", "10", 0)
    chain.append_event(d, "exit", "10", 0, code=75, signalled=1)
    chain.append_event(d, "resubmitted", "11", 1, after="10")
    with open(os.path.join(d, "slurm-jobs.json"), "a") as f:
        f.write('{"event": "start", "job_')  # a torn line is skipped
    assert chain.resubmissions(d) == 1
    jobs = chain.chain_jobs(chain.read_events(d))
    assert [(j.job_id, j.resubmit, j.exit_code, j.signalled) for j in jobs] == \
        [("10", 0, 75, True), ("11", 1, None, False)]
    chain.append_event(d, "submitted", "20", 0)
    assert chain.resubmissions(d) == 0
    assert not chain.is_cancelled(d)
    chain.mark_cancelled(d)
    assert chain.is_cancelled(d) and open(chain.cancel_marker(d)).read().startswith("CANCELLED")
    chain.clear_cancelled(d)
    assert not chain.is_cancelled(d)


def test_jobs_and_cancel_without_slurm_commands(tmp_path):
    d = str(tmp_path / "exp")
    chain.append_event(d, "submitted", "10", 0)
    chain.append_event(d, "exit", "10", 0, code=0, signalled=0)
    chain.append_event(d, "submitted", "12", 0)
    env = dict(os.environ, PYTHONPATH=REPO, PATH=os.path.dirname(sys.executable))  # no squeue/sacct/scancel
    out = nasrun(["jobs", d], str(tmp_path), env).stdout
    assert "not available" in out and "10" in out and "12" in out
    p = nasrun(["cancel", d], str(tmp_path), env, check=False)
    assert p.returncode == 1 and "scancel not found" in p.stderr and "Traceback" not in p.stderr
    assert chain.is_cancelled(d)  # no resubmission, even though scancel could not run


def test_jobs_without_a_chain_is_a_clear_error(tmp_path):
    p = nasrun(["jobs", str(tmp_path)], str(tmp_path), dict(os.environ, PYTHONPATH=REPO), check=False)
    assert p.returncode == 2 and "no SLURM jobs recorded" in p.stderr
