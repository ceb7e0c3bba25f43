"""kill -9 at random instants (mostly in the middle of a write) never loses the checkpoint."""
import os
import signal
import subprocess
import sys
import time
import warnings

import h5py
import numpy as np

from nasrun.store import CheckpointWarning, open_store
from nasrun.store.sample import difference, sample_snapshot

WRITER = """
import sys
from nasrun.store import open_store
from nasrun.store.sample import sample_snapshot
store = open_store(sys.argv[1])
snap = store.load()
step = snap.runtime_state["step"] if snap else 0
print("start", step, flush=True)
while True:
    step += 1
    store.save(sample_snapshot(step, model_params=5000))
    print("saved", step, flush=True)
"""


def start_writer(d, slow):
    env = dict(os.environ, NASRUN_TEST_SLOW_WRITE=str(slow), OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(p for p in [os.getcwd(), os.environ.get("PYTHONPATH")] if p))
    return subprocess.Popen([sys.executable, "-c", WRITER, str(d)], stdout=subprocess.PIPE, text=True,
                            env=env)


def read_until(proc, pred, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        line = proc.stdout.readline()
        if not line:
            break
        if pred(line.split()):
            return line.split()
    proc.kill()
    raise AssertionError("writer stopped or timed out")


def test_kill_9_at_random_points_leaves_a_resumable_checkpoint(tmp_path):
    rng = np.random.default_rng(1)
    mid_write = 0
    for round_ in range(6):
        proc = start_writer(tmp_path, slow=0.01)
        try:
            start = int(read_until(proc, lambda w: w[0] == "start")[1])
            last = int(read_until(proc, lambda w: w[0] == "saved")[1])  # at least one save done
            time.sleep(float(rng.uniform(0.0, 0.4)))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            rest = proc.stdout.read().split()
            saved = [int(w) for w in rest if w.isdigit()]
            last = max([last] + saved)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert last > start
        mid_write += (tmp_path / "experiment.h5.tmp").exists() or any(
            n.endswith(".tmp") for n in os.listdir(tmp_path / "experiment.weights"))
        with warnings.catch_warnings():
            warnings.simplefilter("error", CheckpointWarning)  # a kill is no corruption
            got = open_store(str(tmp_path)).load()
        assert got is not None
        step = got.runtime_state["step"]
        assert step in (last, last + 1), (round_, step, last)
        assert difference(sample_snapshot(step, model_params=5000), got) is None
    assert mid_write >= 2  # the kills did hit writes in progress


def test_status_reads_while_the_writer_writes_and_never_blocks_it(tmp_path):
    proc = start_writer(tmp_path, slow=0.002)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in [os.getcwd(), os.environ.get("PYTHONPATH")] if p))
    try:
        first = int(read_until(proc, lambda w: w[0] == "saved")[1])
        # a reader holding the main file open does not stop the writer from moving on
        with h5py.File(tmp_path / "experiment.h5", "r") as held:
            gen = int(held.attrs["generation"])
            n = int(read_until(proc, lambda w: w[0] == "saved" and int(w[1]) >= first + 3)[1])
            assert n >= first + 3 and int(held.attrs["generation"]) == gen  # still the old file
        steps = []
        for _ in range(6):
            r = subprocess.run([sys.executable, "-m", "nasrun", "status", str(tmp_path), "--json"],
                               capture_output=True, text=True, env=env, timeout=60)
            assert r.returncode == 0, r.stderr
            import json
            rep = json.loads(r.stdout)
            assert rep["trials"]["total"] == 8 and not rep["warnings"]
            steps.append(rep["generation"])
        assert steps == sorted(steps) and steps[-1] > steps[0]
    finally:
        proc.kill()
        proc.wait(timeout=30)
