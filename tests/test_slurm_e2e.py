"""End to end under the local cluster (slurm/local-cluster.sh) with the real `nasrun submit`,
`nasrun run` / `nasrun resume` and the HDF5 store. The objective is tests/slurm_objective.py:score
(sleeps NASRUN_TEST_SLEEP seconds a trial). These tests fail, not skip, when SLURM is missing.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
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
from store_view import load_view

from nasrun.store import DONE

pytestmark = pytest.mark.slurm
__all__ = ["slurm_cluster"]


def write_spec(tmp_path, name, max_trials, slurm_lines):
    spec = tmp_path / "spec.yaml"
    slurm = "\n".join(f"  {x}" for x in [f"python: {sys.executable}", "tasks_per_node: 3", *slurm_lines])
    spec.write_text(f"""experiment: {{name: {name}, seed: 1}}
space:
  params:
    x: {{type: float, low: 0.0, high: 1.0}}
    k: [a, b, c]
strategy: {{name: random}}
objective:
  type: function
  function: slurm_objective:score
  python_path: [{os.path.join(REPO, 'tests')}]
budget: {{max_trials: {max_trials}}}
checkpoint: {{every_seconds: 1}}
slurm:
{slurm}
""")
    return str(spec), str(tmp_path / "runs" / name)


def snapshot(exp_dir):
    """The experiment as its checkpoint holds it (None before the first commit)."""
    return load_view(exp_dir)


def job_ids(exp_dir):
    """The job ids of the chain file, in order of their start."""
    return [e["job_id"] for e in events(exp_dir) if e["event"] == "start"]


def check_jobs_recorded(exp_dir, cwd, env):
    """The SLURM job chain is in the checkpoint's runtime state and `nasrun status` shows it."""
    jobs = job_ids(exp_dir)
    snap = snapshot(exp_dir)
    assert [str(j) for j in snap.loaded.state.jobs] == jobs
    rep = json.loads(nasrun(["status", exp_dir, "--json"], cwd, env).stdout)
    assert rep["jobs"] == jobs
    text = nasrun(["status", exp_dir], cwd, dict(env, COLUMNS="200")).stdout
    assert f"job chain: {', '.join(jobs)}" in text, text
    return jobs


def env_with(env, sleep):
    return dict(env, NASRUN_TEST_SLEEP=str(sleep),
                PYTHONPATH=os.pathsep.join([REPO, os.path.join(REPO, "tests")]))


def test_submitted_spec_runs_to_completion_on_several_mpi_tasks(tmp_path, slurm_cluster):
    spec, exp = write_spec(tmp_path, "e2e-run", 6, [])
    env = env_with(slurm_cluster, 0.1)
    nasrun(["submit", spec], str(tmp_path), env)
    wait_for(lambda: chain_done(exp), 180, "the search to finish")
    ev = events(exp)
    assert ev[-1]["event"] == "exit" and ev[-1]["code"] == 0, job_output(exp)
    snap = snapshot(exp)
    assert finished_trials(exp) == list(range(6)), job_output(exp)
    assert {r.group for r in snap.trials} == {0, 1}  # 3 tasks: rank 0 and two worker groups
    for r in snap.trials:
        assert 0.0 <= r.outcome.metrics["valid_accuracy"] <= 1.0
    jobs = check_jobs_recorded(exp, str(tmp_path), env)
    assert len(jobs) == 1 and {r.job_id for r in snap.trials} == {jobs[0]}


@pytest.mark.slow
def test_time_limit_signal_checkpoints_resubmits_and_finishes_the_budget(tmp_path, slurm_cluster):
    # What SLURM sends before the time limit (--signal=B:USR1@lead: SIGUSR1 to the batch shell),
    # sent by the test at a known point instead of by SLURM's time-limit check, which runs about
    # once a minute (the signal came anywhere in the first minute, and a job that had finished
    # its trials by then made the test fail): after two finished trials, 14 trials of 3 s on two
    # groups leave ~15 s of work.
    spec, exp = write_spec(tmp_path, "e2e-signal", 14, ['time: "10"', "signal_lead: 60", "max_resubmits: 10"])
    env = env_with(slurm_cluster, 3.0)
    nasrun(["submit", spec], str(tmp_path), env)
    first = events(exp)[0]["job_id"]

    wait_finished(exp, 2, 120)
    subprocess.run(["scancel", "--batch", "--signal=USR1", first], env=env, check=True, timeout=30)
    wait_for(lambda: chain_done(exp), 300, "the chain to finish the budget")
    ev = events(exp)
    exits = [e for e in ev if e["event"] == "exit"]
    assert len(exits) >= 2 and exits[0]["code"] == 75 and exits[0]["signalled"] == 1, job_output(exp)
    assert exits[-1]["code"] == 0, job_output(exp)
    assert finished_trials(exp) == list(range(14))  # none lost, none repeated
    assert "nasrun resume" in job_output(exp) or " resume " in job_output(exp)
    jobs = check_jobs_recorded(exp, str(tmp_path), env)
    assert len(jobs) >= 2
    assert len({r.job_id for r in snapshot(exp).trials}) >= 2  # trials finished in several jobs


def test_scancel_then_submit_resumes_instead_of_restarting(tmp_path, slurm_cluster):
    spec, exp = write_spec(tmp_path, "e2e-cancel", 12, [])
    env = env_with(slurm_cluster, 1.0)
    nasrun(["submit", spec], str(tmp_path), env)
    first = events(exp)[0]["job_id"]

    wait_finished(exp, 2, 120)
    before = snapshot(exp)
    subprocess.run(["scancel", first], env=env, check=True, timeout=30)
    wait_for(lambda: first not in subprocess.run(["squeue", "-h", "-o", "%i"], env=env, capture_output=True,
                                                 text=True, timeout=30).stdout.split(), 60, "the job to end")
    nasrun(["submit", spec], str(tmp_path), env)
    wait_for(lambda: chain_done(exp), 180, "the resumed search to finish")
    assert events(exp)[-1]["code"] == 0, job_output(exp)
    assert f"resume {exp}" in job_output(exp), job_output(exp)
    after = snapshot(exp)
    assert finished_trials(exp) == list(range(12))
    done_before = {r.trial_id: r.outcome.metrics for r in before.trials if r.status == DONE}
    done_after = {r.trial_id: r.outcome.metrics for r in after.trials}
    assert all(done_after[t] == m for t, m in done_before.items())
    # the first job's finished trials were kept, not run again by the second job
    by_job = {r.trial_id: r.job_id for r in after.trials}
    assert all(by_job[t] == first for t in done_before)
    jobs = check_jobs_recorded(exp, str(tmp_path), env)
    assert jobs[0] == first and len(jobs) == 2
