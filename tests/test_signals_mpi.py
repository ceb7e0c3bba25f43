"""SIGUSR1 to a running `mpirun ... nasrun run` (mpirun forwards it to every rank): rank 0 saves
the in-flight trials' state, the job exits 75, `nasrun resume` finishes the budget."""
import signal
import sys
import time

import pytest
from conftest import mpi_env
from mpi_jobs import NB201, TESTS, Job, session_pids
from store_view import load_view

from nasrun.store import DONE, RUNNING, open_store

pytestmark = [pytest.mark.mpi]  # no skip without mpirun: install.sh provides it, a missing one fails


def wait_for(predicate, timeout, what, job):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = predicate()
        if v:
            return v
        assert job.proc.poll() is None, f"the job ended while waiting for {what}:\n{job.output}"
        time.sleep(0.1)
    job.kill()
    raise AssertionError(f"timed out after {timeout} s waiting for {what}:\n{job.output}")


def saved_models(d):
    try:
        snap = load_view(d)
    except Exception:  # noqa: BLE001 - not written yet
        return None
    return snap if snap is not None and snap.refs else None


def test_sigusr1_checkpoints_exits_75_and_resume_continues_from_saved_epochs(tmp_path, digits_spec_text):
    d = str(tmp_path / "exp")
    text = digits_spec_text(trials=3, epochs=3, limit=400, backend="torch").replace(
        "resources:", "checkpoint: {every_seconds: 0.01}\nresources:").replace(
        "experiment: {name: t, seed: 0}", f"experiment: {{name: t, seed: 0, output_dir: {d}}}")
    (tmp_path / "spec.yaml").write_text(text)
    # trials 0 and 1 take 1 s per step (5 steps an epoch): both are in flight at the signal
    env = mpi_env(NASRUN_INJECT_FAILURE="trial=0,kind=slow;trial=1,kind=slow")
    job = Job(3, ["run", str(tmp_path / "spec.yaml")], str(tmp_path), env)
    wait_for(lambda: saved_models(d), 120, "an epoch's state in the checkpoint", job)
    t0 = time.monotonic()
    job.proc.send_signal(signal.SIGUSR1)
    rc = job.wait(60)
    took = time.monotonic() - t0
    assert rc == 75, job.output
    assert "signal received: saving the state of 2 trial(s) in flight" in job.output
    assert "exited on signal" not in job.output  # no worker rank died of SIGUSR1
    assert took < 30, took  # one 1-s step to finish, a save, the stop: seconds
    snap = load_view(d)
    running = list(snap.loaded.state.live.values())  # given back cleanly: queued, attempts 0
    assert sorted(r.trial_id for r in running) == [0, 1]
    assert all(r.status == "queued" and r.attempts == 0 for r in running)
    models = snap.models
    assert all(models[r.trial_id].epoch >= 1 for r in running)

    job = Job(3, ["resume", d], str(tmp_path))  # no slow-down this time
    assert job.wait(150) == 0, job.output
    final = load_view(d)
    assert [r.status for r in final.trials] == [DONE] * 3
    recs = {r.trial_id: r for r in final.trials}
    for r in running:
        curve = recs[r.trial_id].outcome.curve
        assert len(curve) == 3
        saved = [{k: float(v) for k, v in c.items()} for c in models[r.trial_id].meta["curve"]]
        assert [dict(c) for c in curve[:len(saved)]] == saved  # the saved epochs were not trained again


def slow_nb201_spec(name, out_dir, trials):
    """Random search on the NB201 table through tests/nb201_slow.py (a lookup with a short sleep)."""
    return f"""experiment: {{name: {name}, seed: 0, output_dir: {out_dir}}}
space: {{builtin: nb201}}
strategy: {{name: random}}
objective:
  type: function
  function: nb201_slow:score
  python_path: [{TESTS}]
  options: {{sleep: 0.01, path: {NB201}}}
budget: {{max_trials: {trials}}}
"""


def test_second_signal_stops_waiting_for_busy_groups(tmp_path):
    """Trials 2 and 3 run an objective that cannot be interrupted: after the first SIGUSR1 rank 0
    waits for them; a second SIGUSR1 makes it save at once and end the job (75)."""
    d, marks = str(tmp_path / "exp"), tmp_path / "marks"
    marks.mkdir()
    (tmp_path / "spec.yaml").write_text(slow_nb201_spec("sig2", d, 5))
    env = mpi_env(NASRUN_TEST_HANG_TRIALS="2,3", NASRUN_TEST_MARK_DIR=str(marks))
    job = Job(3, ["run", str(tmp_path / "spec.yaml")], str(tmp_path), env)
    wait_for(lambda: (marks / "started-2").exists() and (marks / "started-3").exists(), 120,
             "trials 2 and 3 to start", job)
    job.proc.send_signal(signal.SIGUSR1)
    wait_for(lambda: "signal received" in job.output, 30, "rank 0 to see the signal", job)
    t0 = time.monotonic()
    job.proc.send_signal(signal.SIGUSR1)
    rc = job.wait(60)
    assert rc == 75, job.output
    assert time.monotonic() - t0 < 30  # not the 120 s flush timeout nor the 120 s trials
    assert "some groups do not answer" in job.output
    assert not session_pids(job.proc.pid)
    snap = load_view(d)
    st = {r.trial_id: r.status for r in snap.trials}
    assert st == {0: DONE, 1: DONE, 2: RUNNING, 3: RUNNING}, st
    job = Job(4, ["resume", d, "--objective", "nb201_slow:score"], str(tmp_path))  # other ranks
    assert job.wait(150) == 0, job.output
    final = load_view(d)
    assert [r.status for r in final.trials] == [DONE] * 5
    assert [r.outcome.metrics for r in final.trials[:2]] == [r.outcome.metrics for r in snap.trials[:2]]


def test_signal_during_startup_still_checkpoints(tmp_path):
    """SLURM may signal a job as it starts: SIGUSR1 while the ranks still import must not kill them."""
    d = str(tmp_path / "exp")
    (tmp_path / "spec.yaml").write_text(slow_nb201_spec("sig0", d, 40))
    job = Job(3, ["run", str(tmp_path / "spec.yaml")], str(tmp_path))

    def ranks_catch_usr1():  # every rank has nasrun's early handler (SigCgt), still importing
        ranks = [p for p in session_pids(job.proc.pid)
                 if _proc(p, "cmdline").startswith(sys.executable + "\0")]
        return len(ranks) == 3 and all(_catches_usr1(p) for p in ranks)
    wait_for(ranks_catch_usr1, 60, "the ranks to start", job)
    assert not open_store(d).generation_files()  # before the driver's first save
    job.proc.send_signal(signal.SIGUSR1)
    rc = job.wait(60)
    assert rc == 75, job.output
    assert "exited on signal" not in job.output
    assert not [r for r in load_view(d).trials if r.status == DONE]  # before any work
    job = Job(3, ["resume", d, "--objective", "nb201_slow:score"], str(tmp_path))
    assert job.wait(120) == 0, job.output
    assert [r.status for r in load_view(d).trials] == [DONE] * 40


def _proc(pid, name):
    try:
        with open(f"/proc/{pid}/{name}") as f:
            return f.read()
    except OSError:
        return ""


def _catches_usr1(pid):
    for line in _proc(pid, "status").splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGUSR1 - 1)))
    return False
