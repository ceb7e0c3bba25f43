"""Model states written by the worker groups themselves, under mpirun, through kill -9.

The group leader writes a trial's state into the experiment's weights directory (temporary name,
fsync, rename, checksum) and sends rank 0 only the reference; whoever continues the trial reads
the file. A state far over MPI's 2 GiB message limit therefore works, and a job killed while a
worker writes loses nothing that was committed.
"""
import os
import time

import numpy as np
import pytest
from conftest import mpi_env
from mpi_jobs import TESTS, Job, session_pids

from nasrun.store import open_store

GIB3 = 3 * 2 ** 30 // 4  # float32 elements of a 3 GiB tensor


def spec(d, elements, trials=2):
    return f"""
experiment: {{name: big, seed: 0, output_dir: {d}}}
space: {{builtin: chain, options: {{kind: mlp, max_layers: 2}}}}
strategy: {{name: random}}
objective: {{type: function, function: "objectives_for_tests:big_state", python_path: ["{TESTS}"],
             options: {{elements: {elements}}}}}
budget: {{max_trials: {trials}}}
checkpoint: {{keep_best: 0}}
"""


def refs_of(d, tid=0):
    try:
        loaded = open_store(str(d)).load()
    except Exception:  # noqa: BLE001 - not written yet
        return []
    return [] if loaded is None else list(loaded.state.refs.get(tid, []))


def resume(tmp_path, d, env, slow_group_0=True):
    """Resume the experiment with 2 groups; with group 0 slow to start, group 1 takes trial 0."""
    if slow_group_0:
        env = dict(env, NASRUN_TEST_PREPARE_DELAY="group=0,seconds=20")
    env.pop("NASRUN_TEST_BIG_HANG", None)
    job = Job(3, ["resume", str(d), "--objective", "objectives_for_tests:big_state"], str(tmp_path), env)
    assert job.wait(400) == 0, job.output
    return job


def hang_env():
    return mpi_env(NASRUN_TEST_BIG_HANG="1")


@pytest.mark.mpi
@pytest.mark.slow
def test_a_3_gib_state_written_by_a_group_survives_kill_9_and_resumes_on_another_group(tmp_path):
    d = tmp_path / "exp"
    (tmp_path / "spec.yaml").write_text(spec(d, GIB3))
    job = Job(2, ["run", str(tmp_path / "spec.yaml")], str(tmp_path), hang_env())
    job.wait_until(lambda: bool(refs_of(d)), 400, "trial 0's state reference in the journal")
    job.kill()  # kill -9 of the whole job while trial 0 is in flight
    ref = refs_of(d)[-1]
    path = d / "experiment.weights" / ref.file
    assert ref.nbytes == GIB3 * 4 and path.stat().st_size > GIB3 * 4
    assert ref.epoch == 1
    job = resume(tmp_path, d, hang_env())
    recs = {r.trial_id: r for r in open_store(str(d)).load().state.finished_records()}
    m = recs[0].outcome.metrics
    assert m["bytes_identical"] == 1.0, job.output
    # written by rank 1 (the only group of the first job), continued by rank 2 (group 1)
    assert m["writer_rank"] == 1.0 and m["rank"] == 2.0 and recs[0].group == 1
    assert recs[0].status == "done" and len(recs) == 2
    assert not session_pids(job.proc.pid)
    # nothing is kept that can never be used: no keep_best, no multi-fidelity, trial 0 finished
    assert not [f for f in os.listdir(d / "experiment.weights") if f.endswith(".h5")]


@pytest.mark.mpi
def test_kill_9_while_a_group_writes_a_state_leaves_no_damage(tmp_path):
    """Killed while the leader writes its state file (a temporary file exists, no reference yet):
    the resumed trial starts from scratch, the partial file is removed."""
    d = tmp_path / "exp"
    (tmp_path / "spec.yaml").write_text(spec(d, 150_000_000))  # 600 MB: a second or more to write
    weights = d / "experiment.weights"

    def writing():
        return weights.is_dir() and any(f.endswith(".tmp") for f in os.listdir(weights))

    job = Job(2, ["run", str(tmp_path / "spec.yaml")], str(tmp_path), hang_env())
    job.wait_until(writing, 300, "a state file being written")
    job.kill()
    assert not refs_of(d), "the reference came before the kill: the kill missed the write"
    leftovers = [f for f in os.listdir(weights) if f.endswith(".tmp")]
    assert leftovers
    job = resume(tmp_path, d, hang_env(), slow_group_0=False)
    recs = {r.trial_id: r for r in open_store(str(d)).load().state.finished_records()}
    assert recs[0].status == "done" and "bytes_identical" not in recs[0].outcome.metrics  # from scratch
    assert recs[0].outcome.metrics["valid_accuracy"] == 0.5
    assert not [f for f in os.listdir(weights) if f.endswith(".tmp")]


@pytest.mark.mpi
def test_the_reference_reaches_rank_0_while_the_trial_still_runs(tmp_path):
    """A written state is reported within a step, not only at the next checkpoint: rank 0 logs
    its reference while the trial is still in flight (small state, quick)."""
    d = tmp_path / "exp"
    (tmp_path / "spec.yaml").write_text(spec(d, 1000))
    job = Job(2, ["run", str(tmp_path / "spec.yaml")], str(tmp_path), hang_env())
    t0 = time.monotonic()
    job.wait_until(lambda: bool(refs_of(d)), 120, "trial 0's state reference")
    st = open_store(str(d)).load().state
    assert 0 in st.live and st.refs[0][0].epoch == 1
    job.kill()
    ms = open_store(str(d)).states.read(refs_of(d)[-1])
    assert np.array_equal(ms.tensors["w"].view(np.uint32), np.arange(1000, dtype=np.uint32))
    assert time.monotonic() - t0 < 120


@pytest.mark.mpi
def test_a_group_that_does_not_see_the_experiment_directory_stops_the_run_before_training(tmp_path):
    """Rank 2 runs in a mount namespace where the experiment directory is an empty tmpfs (a node
    without the shared file system): the run stops before any trial with a message naming the
    host, the rank and the path, and nothing is trained."""
    import shutil
    import socket
    import subprocess
    import sys
    d = tmp_path / "exp"
    d.mkdir()
    (tmp_path / "spec.yaml").write_text(spec(d, 1000))
    nasrun = [sys.executable, "-m", "nasrun", "run", str(tmp_path / "spec.yaml")]
    hidden = ["unshare", "--mount", "sh", "-c", f'mount -t tmpfs tmpfs "{d}" && exec "$@"', "sh"] + nasrun
    assert shutil.which("unshare")
    p = subprocess.run(["mpirun", "--oversubscribe", "-np", "2"] + nasrun + [":", "-np", "1"] + hidden,
                       cwd=str(tmp_path), env=mpi_env(), capture_output=True, text=True, timeout=300)
    out = p.stdout + p.stderr
    assert p.returncode == 2, out
    assert "worker groups do not see the experiment directory" in out
    assert f"rank 2 on host {socket.gethostname()}" in out and str(d / "experiment.weights") in out
    assert "rank 1 on host" not in out  # rank 1 sees it
    assert "Traceback" not in out and "| group" not in out  # no trial ran
