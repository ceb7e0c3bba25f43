"""Real mpirun runs on the digits data (short: few trials, one or two epochs, small widths)."""
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, mpi_env, mpirun
from store_view import load_view

from nasrun.spec import parse_spec
from nasrun.store import DONE, FAILED

pytestmark = [pytest.mark.mpi]  # no skip without mpirun: install.sh provides it, a missing one fails
ENTRY = os.path.join(REPO, "tests", "mpi_entry.py")


def launch(tmp_path, np_, text, timeout=150, **env):
    (tmp_path / "spec.yaml").write_text(text)
    store = str(tmp_path / "exp")
    p = mpirun(np_, [ENTRY, str(tmp_path / "spec.yaml"), store], timeout=timeout,
               env=mpi_env(**env), cwd=str(tmp_path))
    return p, load_view(store)


def check_done(snap, text, min_acc=0.2):
    space = parse_spec(text).make_space()
    for r in snap.trials:
        assert space.contains(r.suggestion.config)
        if r.status == DONE:
            assert r.outcome.metrics["valid_accuracy"] > min_acc  # chance is 0.1
            assert len(r.outcome.curve) == int(r.outcome.metrics["epochs"])


def test_three_ranks_failure_is_recorded_and_search_goes_on(tmp_path, digits_spec_text):
    text = digits_spec_text(trials=4, epochs=2)
    p, snap = launch(tmp_path, 3, text, NASRUN_INJECT_FAILURE="trial=1,kind=raise,rank=0")
    assert p.returncode == 0, p.stderr + p.stdout
    st = {r.trial_id: r for r in snap.trials}
    assert sorted(st) == [0, 1, 2, 3]
    assert st[1].status == FAILED and "injected failure in trial 1" in st[1].outcome.error
    assert "Traceback" in st[1].outcome.error
    assert [st[i].status for i in (0, 2, 3)] == [DONE] * 3
    assert {r.group for r in snap.trials} == {0, 1}  # both groups got work
    check_done(snap, text)
    assert "injected failure in trial 1" in p.stdout  # rank 0 prints the worker's traceback
    assert "trial    0 | group" in p.stdout


@pytest.mark.parametrize("backend", [
    # Horovod is skipped only where the install was told to leave it out (NASRUN_NO_HOROVOD=1)
    pytest.param("horovod", marks=pytest.mark.skipif(os.environ.get("NASRUN_NO_HOROVOD") == "1",
                                                     reason="NASRUN_NO_HOROVOD=1")),
    "torch"])
def test_groups_of_two_average_gradients(tmp_path, digits_spec_text, backend):
    """5 ranks = rank 0 + two groups of two; a NaN on a non-leader rank fails only its trial."""
    text = digits_spec_text(trials=4, epochs=2, rpt=2, backend=backend)
    digests = tmp_path / "digests"
    digests.mkdir()
    p, snap = launch(tmp_path, 5, text, NASRUN_DEBUG_DIGEST_DIR=str(digests),
                     NASRUN_INJECT_FAILURE="trial=2,kind=nan,rank=1")
    assert p.returncode == 0, p.stderr + p.stdout
    st = {r.trial_id: r for r in snap.trials}
    assert st[2].status == FAILED and "non-finite training loss" in st[2].outcome.error
    assert "[group rank 1]" in st[2].outcome.error
    done = [r for r in snap.trials if r.status == DONE]
    assert len(done) == 3
    check_done(snap, text)
    for r in done:  # both ranks of the group end with identical parameters
        ranks = (1, 2) if r.group == 0 else (3, 4)
        a, b = [(digests / f"trial{r.trial_id}_rank{k}.txt").read_text() for k in ranks]
        assert a == b


def test_four_ranks_time_limit(tmp_path, digits_spec_text):
    # the injected trial sleeps 1 s per batch (22 batches of 64: over 21 s of wall time whatever
    # the load); a normal 1-epoch trial takes ~3 s alone and exceeded a 10 s limit on a loaded
    # machine
    text = digits_spec_text(trials=4, epochs=1, extra_res=", trial_time_limit: 20")
    p, snap = launch(tmp_path, 4, text, NASRUN_INJECT_FAILURE="trial=0,kind=slow")
    assert p.returncode == 0, p.stderr + p.stdout
    st = {r.trial_id: r for r in snap.trials}
    assert st[0].status == FAILED and "time limit exceeded" in st[0].outcome.error
    assert all(st[i].status == DONE for i in (1, 2, 3))
    assert {r.group for r in snap.trials} == {0, 1, 2}


def test_cli_default_config_with_random(tmp_path):
    import yaml
    d = yaml.safe_load(open(os.path.join(REPO, "configs", "default.yaml")))
    d["strategy"] = {"name": "random"}  # evolution lives on another branch
    d["budget"]["max_trials"] = 4
    d["experiment"]["output_dir"] = str(tmp_path / "out")
    text = yaml.safe_dump(d)
    (tmp_path / "spec.yaml").write_text(text)
    p = mpirun(3, ["-m", "nasrun", "run", str(tmp_path / "spec.yaml")], cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr + p.stdout
    assert p.stdout.count("| group ") == 4 and "finished (max_trials (4) reached)" in p.stdout


def test_sigusr1_checkpoints_in_flight_and_resume_continues(tmp_path, digits_spec_text):
    text = digits_spec_text(trials=3, epochs=3, limit=400, extra_res=", backend: torch").replace(
        "resources:", "checkpoint: {every_seconds: 0.01}\nresources:")
    text = text.replace("max_consecutive_failures: 3 , backend: torch", "max_consecutive_failures: 3")
    (tmp_path / "spec.yaml").write_text(text)
    store = str(tmp_path / "exp")
    cmd = ["mpirun", "--oversubscribe", "-np", "3", sys.executable, ENTRY, str(tmp_path / "spec.yaml"), store]
    env = mpi_env(NASRUN_INJECT_FAILURE="trial=0,kind=slow;trial=1,kind=slow")
    proc = subprocess.Popen(cmd, env=env, cwd=str(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until an epoch's state reached rank 0
            snap = load_view(store) if os.path.exists(store) else None
            if snap is not None and snap.refs:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGUSR1)  # mpirun forwards SIGUSR1 to every rank
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 75, out
    snap = load_view(store)
    running = list(snap.loaded.state.live.values())  # given back: queued again, with attempts 0
    assert all(r.status == "queued" and r.attempts == 0 for r in running)
    # a trial that had not finished an epoch when the signal came has no state: it restarts
    saved_states = snap.models
    assert running and any(r.trial_id in saved_states for r in running)
    assert all(saved_states[r.trial_id].epoch >= 1 for r in running if r.trial_id in saved_states)
    p, final = launch(tmp_path, 3, text)  # resume: same spec, same store, no slow-down
    assert p.returncode == 0, p.stderr + p.stdout
    assert [r.status for r in final.trials] == [DONE] * 3
    for r in running:
        rec = {t.trial_id: t for t in final.trials}[r.trial_id]
        assert len(rec.outcome.curve) == 3
        if r.trial_id in saved_states:
            # epochs before the signal come from the saved state, not from a fresh start
            saved = saved_states[r.trial_id].meta["curve"]
            assert [dict(c) for c in rec.outcome.curve[:len(saved)]] == \
                [{k: float(v) for k, v in c.items()} for c in saved]


def test_an_unexpected_error_on_rank_0_ends_the_job_instead_of_hanging(tmp_path, digits_spec_text):
    """A bug on rank 0 (the test hook NASRUN_TEST_DRIVER_BUG raises after trial 0): the job
    must abort with the traceback, not leave the worker ranks waiting for tasks forever."""
    (tmp_path / "spec.yaml").write_text(digits_spec_text(trials=3, epochs=1))
    p = mpirun(3, [ENTRY, str(tmp_path / "spec.yaml"), str(tmp_path / "exp")], timeout=90,
               env=mpi_env(NASRUN_TEST_DRIVER_BUG="0"), cwd=str(tmp_path))
    assert p.returncode != 0
    err = p.stderr.decode() if isinstance(p.stderr, bytes) else p.stderr
    assert "Traceback" in err and "NASRUN_TEST_DRIVER_BUG" in err
