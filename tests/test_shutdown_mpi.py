"""A run always ends: groups still starting are stopped, a worker whose rank 0 is gone exits."""
import os
import re
import signal
import time

import pytest
from conftest import mpi_env
from mpi_jobs import NB201, TESTS, Job, session_pids
from store_view import load_view

pytestmark = [pytest.mark.mpi]


def spec(out, trials=4, target=None, extra=""):
    budget = f"max_trials: {trials}" + (f", target: {target}" if target is not None else "")
    return f"""experiment: {{name: end, seed: 0, output_dir: {out}}}
space: {{builtin: nb201}}
strategy: {{name: random}}
objective:
  type: function
  function: nb201_slow:score
  python_path: [{TESTS}]
  options: {{sleep: 0.05, path: {NB201}}}
budget: {{{budget}}}
{extra}
"""


def test_resume_of_a_finished_experiment_exits_with_a_slow_group(tmp_path):
    d = tmp_path / "exp"
    (tmp_path / "spec.yaml").write_text(spec(d))
    job = Job(3, ["run", str(tmp_path / "spec.yaml")], str(tmp_path))
    assert job.wait(150) == 0, job.output
    # group 1 takes 15 s to start (a slow node): the search has nothing left to do
    env = mpi_env(NASRUN_TEST_PREPARE_DELAY="group=1,seconds=15")
    t0 = time.monotonic()
    job = Job(3, ["run", str(tmp_path / "spec.yaml")], str(tmp_path), env)
    rc = job.wait(120)
    t_end = time.monotonic()
    assert rc == 0, job.output
    assert "finished (max_trials (4) reached)" in job.output
    assert t_end - job.line_time("finished (") < 30  # the slow group is stopped when it is ready
    assert t_end - t0 < 15 + 30 + 20  # its start, the driver, the imports: bounded
    assert not session_pids(job.proc.pid)


def test_target_reached_before_the_second_group_is_ready(tmp_path):
    d = tmp_path / "exp"
    (tmp_path / "spec.yaml").write_text(spec(d, trials=50, target=0.0))
    env = mpi_env(NASRUN_TEST_PREPARE_DELAY="group=1,seconds=15")
    job = Job(3, ["run", str(tmp_path / "spec.yaml")], str(tmp_path), env)
    assert job.wait(180) == 0, job.output
    t_fin = job.line_time("finished (")
    assert t_fin is not None and time.monotonic() - t_fin < 30, job.output
    assert re.search(r"finished \(target valid_accuracy 0 reached by trial 0\)", job.output), job.output
    view = load_view(str(d))
    assert [r.trial_id for r in view.trials] == [0] and view.trials[0].group == 0


def test_a_group_that_never_starts_does_not_keep_the_job(tmp_path):
    d = tmp_path / "exp"
    (tmp_path / "spec.yaml").write_text(spec(d, trials=3, extra="resources: {shutdown_grace: 5}"))
    env = mpi_env(NASRUN_TEST_PREPARE_DELAY="group=1,seconds=600")
    t0 = time.monotonic()
    job = Job(3, ["run", str(tmp_path / "spec.yaml")], str(tmp_path), env)
    job.wait(120)
    assert time.monotonic() - t0 < 90, job.output
    assert "did not start within resources.shutdown_grace (5 s)" in job.output
    assert [r.status for r in load_view(str(d)).trials] == ["done"] * 3  # the checkpoint is complete
    assert not session_pids(job.proc.pid)


def test_workers_exit_when_rank_0_is_gone(tmp_path):
    """Rank 0 frozen (SIGSTOP): idle workers hear nothing for resources.orphan_timeout and exit;
    mpirun then ends the job instead of holding the allocation forever."""
    d = tmp_path / "exp"
    (tmp_path / "spec.yaml").write_text(spec(d, trials=100000, extra="resources: {orphan_timeout: 6}"))
    job = Job(3, ["run", str(tmp_path / "spec.yaml")], str(tmp_path))
    job.wait_until(lambda: job.finished_lines() >= 3, 120, "three finished trials")
    rank0 = _rank0(job)
    os.kill(rank0, signal.SIGSTOP)
    t0 = time.monotonic()
    try:
        job.wait(120)
    finally:
        try:
            os.kill(rank0, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert time.monotonic() - t0 < 60, job.output
    # an idle worker hears nothing while it waits for work; a worker that was finishing a trial
    # when rank 0 froze cannot hand its result over: either notices within orphan_timeout
    assert re.search(r"no word from rank 0 for 6 s|rank 0 has not taken a message for 6 s",
                     job.output), job.output


def _rank0(job):
    """The pid of the rank whose OMPI_COMM_WORLD_RANK is 0."""
    end = time.monotonic() + 30
    while time.monotonic() < end:
        for pid in session_pids(job.proc.pid):
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    env = f.read().split(b"\0")
            except OSError:
                continue
            if b"OMPI_COMM_WORLD_RANK=0" in env:
                return pid
        time.sleep(0.1)
    raise AssertionError("rank 0 not found")


# -- a worker that cannot prepare ends the job (exit 2), it does not hang ---------------------------
FAILS_ON = """import os, time
MARK = {mark!r}
if os.environ.get("OMPI_COMM_WORLD_RANK", "0") in {ranks!r}:
    if {wait!r}:  # fail once the healthy group has finished a trial (it is busy with the next)
        end = time.monotonic() + 100
        while not os.path.exists(MARK) and time.monotonic() < end:
            time.sleep(0.05)
    raise RuntimeError("cannot import on this worker")
def f(config, ctx):
    # MARK at the start of the group's second trial: rank 0 logged the first as finished before it
    # handed this one out (the mark used to be written before the first returned: a race)
    open(MARK if os.path.exists(MARK + ".first") else MARK + ".first", "a").close()
    time.sleep(0.2)
    return {{"valid_accuracy": config["x"]}}
"""


def function_spec(tmp_path, module, trials=50):
    return f"""experiment: {{name: prep, seed: 0, output_dir: {tmp_path / 'exp'}}}
space: {{params: {{x: {{type: float, low: 0.0, high: 1.0}}}}}}
objective: {{type: function, function: '{module}:f', python_path: [{tmp_path}]}}
budget: {{max_trials: {trials}}}
"""


@pytest.mark.parametrize("ranks", [("1", "2"), ("2",)], ids=["every-worker", "one-worker"])
def test_a_worker_that_cannot_import_the_objective_ends_the_job_with_exit_2(tmp_path, ranks):
    """Rank 0 imports the module (validate passes); the workers (all, or one while the other
    group trains) cannot: rank 0 logs the error, stops every group and the job exits 2."""
    module = "prep_" + "_".join(ranks)
    (tmp_path / f"{module}.py").write_text(FAILS_ON.format(ranks=set(ranks), wait=len(ranks) == 1,
                                                           mark=str(tmp_path / "a-trial-ran")))
    (tmp_path / "spec.yaml").write_text(function_spec(tmp_path, module))
    t0 = time.monotonic()
    job = Job(3, ["run", str(tmp_path / "spec.yaml")], str(tmp_path))
    rc = job.wait(150)  # a hang would run into this; the job itself ends in seconds
    took = time.monotonic() - t0
    assert rc == 2, job.output
    bad = "|".join(ranks)  # with both failing, rank 0 reports the first one it hears of
    assert re.search(rf"nasrun: error: worker rank ({bad}) \(group [01], host \S+\) could "
                     r"not prepare: objective\.function: cannot import prep_\w+:f: RuntimeError: "
                     r"cannot import on this worker; stopping all worker groups", job.output), \
        job.output
    assert "Traceback" not in job.output
    assert "ending the job with MPI_Abort (exit 2)" in job.output
    assert took < 120, job.output
    assert not session_pids(job.proc.pid)
    view = load_view(str(tmp_path / "exp"))  # committed before the abort
    assert view is not None
    done = [t for t in view.trials if t.status == "done"]
    if len(ranks) == 1:  # group 0 trained until rank 2 failed; its results are kept
        assert done and job.finished_lines() >= 1, job.output
    else:
        assert not done and job.finished_lines() == 0, job.output


def test_an_objective_that_does_not_import_is_refused_before_the_job_starts(tmp_path):
    (tmp_path / "broken.py").write_text("def f(config, ctx:\n    return 1\n")
    (tmp_path / "spec.yaml").write_text(function_spec(tmp_path, "broken"))
    job = Job(3, ["run", str(tmp_path / "spec.yaml")], str(tmp_path))
    assert job.wait(150) == 2, job.output
    assert f"nasrun: error: {tmp_path / 'spec.yaml'}: objective.function: cannot import broken:f: " \
           "syntax error in" in job.output
    assert "Traceback" not in job.output
    assert not os.path.exists(tmp_path / "exp" / "experiment.h5")


def test_every_group_hung_past_its_time_limit_ends_the_job(tmp_path):
    """Both groups stuck in a trial that their own time limit cannot interrupt: rank 0 retires
    each at limit + max(30 s, limit / 2), then fails the run and aborts the job (exit 1) instead of
    waiting forever; the failures are committed."""
    d = tmp_path / "exp"
    (tmp_path / "spec.yaml").write_text(f"""experiment: {{name: hung, seed: 0, output_dir: {d}}}
space: {{params: {{x: {{type: float, low: 0, high: 1}}}}}}
strategy: {{name: random}}
objective: {{type: function, function: "objectives_for_tests:hang", python_path: [{TESTS}]}}
budget: {{max_trials: 10}}
resources: {{trial_time_limit: 1}}
""")
    job = Job(3, ["run", str(tmp_path / "spec.yaml")], str(tmp_path))
    t0 = time.monotonic()
    rc = job.wait(240)
    assert rc == 1, job.output
    assert "no worker group is left (every group hung past its time limit)" in job.output, job.output
    assert time.monotonic() - t0 < 31 + 60, job.output  # the deadline, start-up and abort
    assert not session_pids(job.proc.pid)
    view = load_view(str(d))
    failed = [r for r in view.trials if r.status == "failed"]
    assert len(failed) == 2 and all("does not answer; the group is retired" in r.outcome.error
                                    for r in failed), [r.outcome for r in view.trials]
