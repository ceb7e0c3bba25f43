"""Against the real sbatch of the local cluster (slurm/local-cluster.sh): MPI tasks, the
resubmission chain, SIGUSR1 forwarding, max_resubmits, cancel. The program the job runs is
tests/slurm_prog.py (a stand-in for `nasrun run`, exiting as its plan says)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from slurm_support import PROG, chain_done, events, job_output, nasrun, slurm_cluster, wait_for, write_spec

pytestmark = pytest.mark.slurm
__all__ = ["slurm_cluster"]
CHAIN_TIMEOUT = 60


def setup_experiment(tmp_path, env, plan, slurm_lines, name="exp"):
    state = tmp_path / "state"
    state.mkdir()
    (state / "plan").write_text(plan)
    py = tmp_path / "fakepy"
    py.write_text(f"#!/bin/bash\nexec {json.dumps(sys.executable)} {PROG} \"$@\"\n")
    py.chmod(0o755)
    spec = write_spec(str(tmp_path / "spec.yaml"), name,
                      ["time: \"5\"", "signal_lead: 30", f"python: {py}", *slurm_lines])
    env = dict(env, NASRUN_TEST_STATE=str(state), NASRUN_TEST_NAME=name)
    return spec, env, str(tmp_path / "runs" / name), state


def calls(state):
    path = state / "calls.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def job_ids(ev):
    return [e["job_id"] for e in ev if e["event"] in ("submitted", "resubmitted")]


def test_batch_job_runs_on_several_mpi_tasks(tmp_path, slurm_cluster):
    spec, env, exp, state = setup_experiment(tmp_path, slurm_cluster, "0", ["tasks_per_node: 3"])
    out = nasrun(["submit", spec], str(tmp_path), env).stdout
    assert "submitted job" in out
    wait_for(lambda: chain_done(exp), CHAIN_TIMEOUT, "the job to finish")
    c = calls(state)
    assert [(x["cmd"], x["size"], x["sum"]) for x in c] == [("run", 3, 6)], job_output(exp)
    ev = events(exp)
    assert [e["event"] for e in ev] == ["submitted", "start", "exit"]
    assert ev[-1]["code"] == 0 and len(set(job_ids(ev))) == 1
    jobs = nasrun(["jobs", exp], str(tmp_path), env).stdout
    assert ev[0]["job_id"] in jobs and "COMPLETED" in jobs


def test_exit_75_resubmits_until_exit_0(tmp_path, slurm_cluster):
    spec, env, exp, state = setup_experiment(tmp_path, slurm_cluster, "75,75,0", ["tasks_per_node: 2"])
    nasrun(["submit", spec], str(tmp_path), env)
    wait_for(lambda: chain_done(exp), CHAIN_TIMEOUT, "the chain to finish")
    ev = events(exp)
    ids = job_ids(ev)
    assert len(ids) == 3 and len(set(ids)) == 3, ev
    assert [(x["job"], x["cmd"]) for x in calls(state)] == [(ids[0], "run"), (ids[1], "resume"),
                                                            (ids[2], "resume")]
    assert [e.get("code") for e in ev if e["event"] == "exit"] == [75, 75, 0]
    assert [e["resubmit"] for e in ev if e["event"] == "start"] == [0, 1, 2]
    out = nasrun(["jobs", spec], str(tmp_path), env).stdout
    for i in ids:
        assert i in out


def test_chain_stops_at_max_resubmits(tmp_path, slurm_cluster):
    spec, env, exp, state = setup_experiment(tmp_path, slurm_cluster, "75",
                                             ["tasks_per_node: 1", "max_resubmits: 1"])
    nasrun(["submit", spec], str(tmp_path), env)
    wait_for(lambda: chain_done(exp), CHAIN_TIMEOUT, "the chain to stop")
    ev = events(exp)
    assert len(job_ids(ev)) == 2 and ev[-1]["event"] == "limit", ev
    assert "max_resubmits (1) reached" in job_output(exp)
    assert len(calls(state)) == 2


@pytest.mark.parametrize("launcher", ["srun", "mpirun"])
def test_sigusr1_reaches_every_rank_then_the_job_resubmits(tmp_path, slurm_cluster, launcher):
    """What --signal=B:USR1 does before the time limit, sent at once with scancel --batch."""
    spec, env, exp, state = setup_experiment(tmp_path, slurm_cluster, "wait,0",
                                             ["tasks_per_node: 3", f"launcher: {launcher}"])
    nasrun(["submit", spec], str(tmp_path), env)
    job = events(exp)[0]["job_id"]
    wait_for(lambda: len(list(state.glob(f"ready-{job}-*"))) == 3, CHAIN_TIMEOUT, "3 ranks to start")
    subprocess.run(["scancel", "--signal=USR1", "--batch", job], env=env, check=True, timeout=30)
    wait_for(lambda: chain_done(exp), CHAIN_TIMEOUT, "the chain to finish")
    signalled = sorted(p.name for p in state.glob(f"signalled-{job}-*"))
    assert signalled == [f"signalled-{job}-{r}" for r in range(3)]
    ev = events(exp)
    exits = [e for e in ev if e["event"] == "exit"]
    assert [(e["code"], e["signalled"]) for e in exits] == [(75, 1), (0, 0)], ev
    assert [x["cmd"] for x in calls(state)] == ["run", "resume"]


@pytest.mark.parametrize("how", ["nasrun cancel", "scancel"])
def test_cancelling_a_running_job_stops_the_chain(tmp_path, slurm_cluster, how):
    spec, env, exp, state = setup_experiment(tmp_path, slurm_cluster, "wait,0", ["tasks_per_node: 2"])
    nasrun(["submit", spec], str(tmp_path), env)
    job = events(exp)[0]["job_id"]
    wait_for(lambda: len(list(state.glob(f"ready-{job}-*"))) == 2, CHAIN_TIMEOUT, "the job to run")
    if how == "scancel":
        subprocess.run(["scancel", job], env=env, check=True, timeout=30)
    else:
        out = nasrun(["cancel", spec], str(tmp_path), env).stdout
        assert f"cancelled {job}" in out
        assert os.path.exists(os.path.join(exp, "slurm-cancelled"))

    def gone():
        q = subprocess.run(["squeue", "-h", "-o", "%i"], env=env, capture_output=True, text=True, timeout=30)
        return job not in q.stdout.split()
    wait_for(gone, CHAIN_TIMEOUT, "the job to leave the queue")
    state_line = nasrun(["jobs", exp], str(tmp_path), env).stdout
    assert "CANCELLED" in state_line, state_line
    assert len(job_ids(events(exp))) == 1 and not any(e["event"] == "resubmitted" for e in events(exp))
    # a new submission starts a new chain that resumes from the checkpoint
    nasrun(["submit", spec], str(tmp_path), env)
    assert not os.path.exists(os.path.join(exp, "slurm-cancelled"))
    wait_for(lambda: chain_done(exp), CHAIN_TIMEOUT, "the resumed job")
    assert [x["cmd"] for x in calls(state)] == ["run", "resume"]
    assert events(exp)[-1]["code"] == 0


def test_submit_refuses_while_the_chain_runs(tmp_path, slurm_cluster):
    spec, env, exp, state = setup_experiment(tmp_path, slurm_cluster, "wait,0", ["tasks_per_node: 1"])
    nasrun(["submit", spec], str(tmp_path), env)
    job = events(exp)[0]["job_id"]
    try:
        p = nasrun(["submit", spec], str(tmp_path), env, check=False)
        assert p.returncode == 2 and f"job(s) {job} queued or running" in p.stderr
    finally:
        nasrun(["cancel", exp], str(tmp_path), env)


def test_hostile_job_name_reaches_slurm_literally(tmp_path, slurm_cluster):
    # shell syntax without a space, quote, backslash or '#' (those are refused: sbatch's own parser
    # would split, strip or cut them in an #SBATCH line, see test_slurm_render.py)
    name = "x;touch${IFS}canary|$(touch${IFS}canary)`touch${IFS}canary`&>canary"
    comment = "c;$(touch${IFS}canary)<canary"
    spec, env, exp, state = setup_experiment(tmp_path, slurm_cluster, "0",
                                             ["tasks_per_node: 1", f"job_name: {json.dumps(name)}",
                                              f"extra_sbatch: [{json.dumps('--comment=' + comment)}]"])
    nasrun(["submit", spec], str(tmp_path), env)
    wait_for(lambda: chain_done(exp), CHAIN_TIMEOUT, "the job to finish")
    job = events(exp)[0]["job_id"]
    info = subprocess.run(["scontrol", "show", "job", job], env=env, capture_output=True, text=True,
                          timeout=30).stdout
    assert f"JobName={name}\n" in info and f"Comment={comment} " in info, info
    assert events(exp)[-1]["code"] == 0
    for d in (tmp_path, tmp_path / "runs" / "exp", tmp_path / "runs" / "exp" / "slurm"):
        assert not (d / "canary").exists()


def test_sbatch_reads_each_sbatch_line_as_exactly_one_option(tmp_path, slurm_cluster):
    """sbatch -v lists the options it parsed from the rendered script (--test-only submits nothing):
    exactly the ones nasrun wrote, each extra_sbatch item as one option with its value intact."""
    extra = ["--comment=a,b;$(id)`id`|<>&*", "--exclusive", "--mail-type=END,FAIL"]
    spec = write_spec(str(tmp_path / "spec.yaml"), "exp",
                      ['job_name: "j;$(id)"', 'time: "5"', "signal_lead: 30",
                       f"extra_sbatch: {json.dumps(extra)}"])
    script = tmp_path / "job.sh"
    script.write_text(nasrun(["submit", "--dry-run", spec], str(tmp_path), slurm_cluster).stdout)
    p = subprocess.run(["sbatch", "--test-only", "-v", str(script)], env=slurm_cluster, capture_output=True,
                       text=True, timeout=30)
    lines = p.stderr.splitlines()
    start = lines.index("sbatch: defined options") + 2
    parsed = dict(tuple(x.strip() for x in line[len("sbatch: "):].split(":", 1))
                  for line in lines[start:lines.index("sbatch: end of defined options") - 1])
    assert parsed == {
        "comment": extra[0][len("--comment="):], "cpus-per-task": "1", "exclusive": "exclusive",
        "job-name": "j;$(id)", "mail-type": "END,FAIL", "nodes": "1", "ntasks-per-node": "3",
        "open-mode": "a",
        "output": f"{tmp_path}/runs/exp/slurm/%j.out", "signal": "B:USR1@30", "test-only": "set",
        "time": "00:05:00", "verbose": "1"}, p.stderr
