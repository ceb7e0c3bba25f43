"""kill -9 at random instants (in the middle of writes and merges) loses no logged event."""
import json
import os
import signal
import subprocess
import sys
import time
import warnings

import h5py
import numpy as np

from nasrun.store import CheckpointWarning, open_store

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A writer that behaves like a run: each trial is asked, started, finished (logged), and every
# few trials the store commits, with a strategy snapshot now and then. It prints the id of each
# trial once its Finished event is logged.
WRITER = """
import sys
from nasrun.store import open_store
from nasrun.store.events import Asked, Finished, Started
from nasrun.trial import Outcome, Suggestion
store = open_store(sys.argv[1])
loaded = store.load()
store.begin("x: 1", "t", loaded)
st = store.state
tid = st.next_id
print("start", tid, flush=True)
store.commit({"tid": tid}, (st.next_seq - 1, {"tid": tid}))
while True:
    store.log(Asked(st.next_seq, Suggestion(tid, {"x": tid, "pad": "p" * 300})))
    store.log(Started(tid, tid % 3, float(tid)))
    store.log(Finished(st.next_seq, Outcome(tid, "done", {"valid_accuracy": tid / 1e5},
                                            tuple({"epoch": e, "v": e / 10} for e in range(5))),
                       tid + 0.5))
    print("logged", tid, flush=True)
    tid += 1
    if tid % 4 == 0:
        store.commit({"tid": tid}, (st.next_seq - 1, {"tid": tid}) if tid % 12 == 0 else None)
"""


def start_writer(d, slow, fanin=None):
    env = dict(os.environ, NASRUN_TEST_SLOW_WRITE=str(slow), OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(p for p in [REPO, os.environ.get("PYTHONPATH")] if p))
    if fanin:
        env["NASRUN_TEST_MERGE_FANIN"] = str(fanin)
    return subprocess.Popen([sys.executable, "-c", WRITER, str(d)], stdout=subprocess.PIPE,
                            text=True, env=env)


def read_until(proc, pred, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        line = proc.stdout.readline()
        if not line:
            break
        if pred(line.split()):
            return line.split()
    proc.kill()
    raise AssertionError("writer stopped or timed out")


def kill_and_check(tmp_path, proc):
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    logged = [int(w[1]) for w in (ln.split() for ln in proc.stdout.read().splitlines())
              if w and w[0] == "logged"]
    return logged


def check_complete(tmp_path, last_logged):
    with warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointWarning)  # a kill is no corruption
        got = open_store(str(tmp_path)).load()
    ids = sorted(r.trial_id for r in got.state.finished_records())
    # every trial whose Finished event was logged is there (one more may have been logged
    # between the print and the kill); nothing twice, nothing missing in between
    assert ids == list(range(len(ids))) and len(ids) >= last_logged + 1, (len(ids), last_logged)
    assert got.strategy_state is not None and got.strategy_state["tid"] <= len(ids)
    return got


def test_kill_9_at_random_points_loses_no_logged_trial(tmp_path):
    rng = np.random.default_rng(1)
    mid_write = 0
    last = -1
    for _ in range(6):
        proc = start_writer(tmp_path, slow=0.004)
        try:
            start = int(read_until(proc, lambda w: w[0] == "start")[1])
            assert start == last + 1 or start == last + 2, (start, last)
            last = int(read_until(proc, lambda w: w[0] == "logged")[1])
            time.sleep(float(rng.uniform(0.0, 0.5)))
            mid_write += any(n.endswith(".tmp") for d in (tmp_path, tmp_path / "experiment.segments")
                             for n in os.listdir(d))
            last = max([last] + kill_and_check(tmp_path, proc))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        got = check_complete(tmp_path, last)
        last = got.state.finished - 1
    assert mid_write >= 2  # the kills did hit writes in progress


def test_kill_9_during_a_segment_merge(tmp_path):
    proc = start_writer(tmp_path, slow=0.01, fanin=2)
    try:
        read_until(proc, lambda w: w[0] == "start")
        seen = False
        end = time.time() + 120
        while time.time() < end and not seen:
            seen = any(n.startswith(".merge.") for n in os.listdir(tmp_path / "experiment.segments"))
            time.sleep(0.002)
        assert seen, "no merge observed"
        logged = kill_and_check(tmp_path, proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    leftovers = [n for n in os.listdir(tmp_path / "experiment.segments") if n.startswith(".merge.")]
    assert leftovers  # killed with the merged file half written
    check_complete(tmp_path, max(logged) if logged else -1)
    # the next writer removes the leftovers
    proc = start_writer(tmp_path, slow=0.0, fanin=2)
    try:
        read_until(proc, lambda w: w[0] == "logged")
        read_until(proc, lambda w: w[0] == "logged" and int(w[1]) % 4 == 1)
    finally:
        proc.kill()
        proc.wait()
    assert not set(leftovers) & set(os.listdir(tmp_path / "experiment.segments"))


def test_status_reads_while_the_writer_writes_and_never_blocks_it(tmp_path):
    proc = start_writer(tmp_path, slow=0.002)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in [REPO, os.environ.get("PYTHONPATH")] if p))
    try:
        first = int(read_until(proc, lambda w: w[0] == "logged")[1])
        # a reader holding the main file open does not stop the writer from moving on
        with h5py.File(tmp_path / "experiment.h5", "r", locking=False) as held:
            gen = int(held.attrs["generation"])
            n = int(read_until(proc, lambda w: w[0] == "logged" and int(w[1]) >= first + 12)[1])
            assert n >= first + 12 and int(held.attrs["generation"]) == gen  # still the old file
        totals = []
        for _ in range(5):
            r = subprocess.run([sys.executable, "-m", "nasrun", "status", str(tmp_path), "--json"],
                               capture_output=True, text=True, env=env, timeout=120)
            assert r.returncode == 0, r.stderr
            rep = json.loads(r.stdout)
            assert not rep["warnings"]
            totals.append(rep["trials"]["done"])
        assert totals == sorted(totals) and totals[-1] > totals[0]
    finally:
        proc.kill()
        proc.wait(timeout=30)
