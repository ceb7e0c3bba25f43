"""kill -9 of a whole `mpirun ... nasrun run` job at random instants, then resume, until done.

Determinism (what lets us compare with an uninterrupted run): trial ids come from the strategy's
counter and configurations from its RNG, both restored from the checkpoint; a trial that was in
flight or not yet saved at the kill is asked again with the same id and configuration (it was
asked after the last saved state) or re-queued. Scores are table lookups. With several
asynchronous groups the order of tells depends on timing, so that test uses ``random``, whose
asks do not depend on results; ``evolution`` (asks depend on results) runs with one group, where
ask and tell alternate in a fixed order.
"""
import json
import os
import random
import shutil
import subprocess
import sys
import time

import pytest
from conftest import mpi_env
from mpi_jobs import NB201, TESTS, Job
from store_view import load_strict as load
from store_view import results

from nasrun.store import DONE

pytestmark = [pytest.mark.mpi, pytest.mark.slow]  # no skip without mpirun: install.sh provides it


def spec_text(out_dir, strategy="random", trials=100, sleep=0.05, seed=3):
    strat = {"random": "{name: random}",
             "evolution": "{name: evolution, options: {population_size: 6, sample_size: 3}}",
             # strategy.dedupe: duplicates answered from its cache, the cache restored on resume
             "evolution+dedupe": "{name: evolution, dedupe: true, "
                                 "options: {population_size: 6, sample_size: 3}}"}[strategy]
    return f"""experiment: {{name: kill, seed: {seed}, output_dir: {out_dir}}}
space: {{builtin: nb201}}
strategy: {strat}
objective:
  type: function
  function: nb201_slow:score
  python_path: [{TESTS}]
  options: {{sleep: {sleep}, path: {NB201}}}
budget: {{max_trials: {trials}}}
checkpoint: {{every_seconds: 0.01}}
resources: {{max_attempts: 100}}  # a trial may be in flight at several of the kills
"""


def leftovers(d):
    """Temporary files of a commit that a kill interrupted."""
    out = set()
    for sub in ("", "experiment.segments"):
        try:
            out |= {os.path.join(sub, n) for n in os.listdir(os.path.join(d, sub)) if n.endswith(".tmp")}
        except FileNotFoundError:
            pass
    return out


def reference(tmp_path, strategy, trials, np_):
    d = str(tmp_path / "reference")
    (tmp_path / "ref.yaml").write_text(spec_text(d, strategy, trials))
    job = Job(np_, ["run", str(tmp_path / "ref.yaml")], str(tmp_path))
    assert job.wait(180) == 0, job.output
    return load(d)


def kill_and_resume(tmp_path, strategy, trials, ranks, kills, status_round=None):
    """Kill at random instants ``kills`` times (ranks[i] ranks in round i), then finish."""
    d = str(tmp_path / "killed")
    spec = str(tmp_path / "spec.yaml")
    (tmp_path / "spec.yaml").write_text(spec_text(d, strategy, trials))
    env = mpi_env(NASRUN_TEST_SLOW_WRITE="0.003")  # a save takes ~0.1 s: most kills land in one
    rng = random.Random(7)
    seen, mid_write, done_kills, uses = {}, 0, 0, set()
    for rnd in range(kills + 1):
        np_ = ranks[rnd % len(ranks)]
        has_ckpt = os.path.exists(os.path.join(d, "experiment.h5"))
        args = (["resume", d, "--objective", "nb201_slow:score"] if has_ckpt and rnd % 2
                else ["run", spec])
        uses.add(args[0])
        job = Job(np_, args, str(tmp_path), env)
        if rnd == kills:  # the last round runs to the end
            assert job.wait(300) == 0, job.output
            break
        # a few trials finished in this round, then a random instant
        running = job.wait_until(lambda job=job: job.finished_lines() >= 2, 120, "two finished trials")
        assert running, f"round {rnd} ended before it could be killed:\n{job.output}"
        if rnd == status_round:  # `nasrun status` while the run writes checkpoints
            st = subprocess.run([sys.executable, "-m", "nasrun", "status", d, "--json"], env=env,
                                capture_output=True, text=True, timeout=60)
            assert st.returncode == 0, st.stderr
            rep = json.loads(st.stdout)
            assert rep["trials"]["done"] >= 1 and not rep["warnings"]
            assert job.proc.poll() is None, "the run ended before status read it"
        time.sleep(rng.uniform(0.0, 0.6))
        job.kill()
        done_kills += 1
        mid_write += bool(leftovers(d))
        snap = load(d)
        assert snap is not None, job.output
        now = results(snap)
        for tid, res in seen.items():  # no finished trial lost or changed
            assert now.get(tid) == res, (rnd, tid)
        seen = now
    assert done_kills == kills and uses == {"run", "resume"}
    assert mid_write >= 1, "no kill landed during a checkpoint write"
    return load(d), job.output


def test_random_search_killed_at_random_points_on_changing_ranks_equals_uninterrupted(tmp_path):
    """5 kills with 3 asynchronous groups; resumed on 3, 5 and 4 ranks (1 + 2, 4 or 3 groups)."""
    trials = 100
    final, out = kill_and_resume(tmp_path, "random", trials, [4, 3, 5], kills=5, status_round=0)
    ref = reference(tmp_path, "random", trials, 4)
    got = results(final)
    assert sorted(got) == list(range(trials)), out
    assert got == results(ref)
    assert all(r.status == DONE for r in final.trials) and len(final.trials) == trials


@pytest.mark.parametrize("strategy", ["evolution", "evolution+dedupe"])
def test_evolution_with_one_group_killed_and_resumed_equals_uninterrupted(tmp_path, strategy):
    """Evolution's asks depend on results: with one group the whole sequence must be identical."""
    trials = 40
    final, out = kill_and_resume(tmp_path, strategy, trials, [2], kills=3)
    ref = reference(tmp_path, strategy, trials, 2)
    got = results(final)
    assert sorted(got) == list(range(trials)), out
    assert got == results(ref)
    # the strategy ends in the same state (population, RNG, counter)
    assert json.dumps(final.loaded.strategy_state, sort_keys=True, default=str) == \
        json.dumps(ref.loaded.strategy_state, sort_keys=True, default=str)
    if strategy == "evolution+dedupe":  # duplicates were proposed and answered from the cache
        assert ref.loaded.strategy_state["strategy"]["answered"] > 0


# -- damaged checkpoints and changed specs, through the CLI ------------------------------------

TABLE_SPEC = """experiment: {{name: dmg, seed: {seed}, output_dir: {out}}}
space: {{builtin: nb201}}
strategy: {{name: random}}
objective: {{type: table, path: {nb201}}}
budget: {{max_trials: {trials}}}
"""


def nasrun(args, cwd, np_=1, timeout=120):
    job = Job(np_, args, str(cwd))
    rc = job.wait(timeout)
    return rc, job.output


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A finished 4-trial experiment: experiment.h5 (4 done) and experiment.h5.1 (3 done)."""
    base = tmp_path_factory.mktemp("pristine")
    d = base / "exp"
    (base / "spec.yaml").write_text(TABLE_SPEC.format(seed=0, out=d, nb201=NB201, trials=4))
    rc, out = nasrun(["run", str(base / "spec.yaml")], base)
    assert rc == 0, out
    assert {"experiment.h5", "experiment.h5.1"} <= set(os.listdir(d))
    return d


def flip_bytes(path):
    import h5py
    with h5py.File(path, "r") as f:
        off = f["runtime/arrays/0"].id.get_offset()  # inside the data: the checksum must catch it
    with open(path, "r+b") as f:
        f.seek(off)
        b = f.read(4)
        f.seek(off)
        f.write(bytes(x ^ 0xFF for x in b))


def cut_short(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def empty(path):
    open(path, "wb").close()


def not_hdf5(path):
    with open(path, "w") as f:
        f.write("experiment: {name: x}\n" * 50)


def other_program(path):
    import h5py
    import numpy as np
    os.remove(path)
    with h5py.File(path, "w") as f:
        f["data"] = np.arange(10.0)
        f.attrs["creator"] = "another program"


DAMAGE = {"flipped bytes": (flip_bytes, "checksum"), "cut short": (cut_short, "unreadable"),
          "empty": (empty, "empty file"), "not HDF5": (not_hdf5, "not an HDF5 file"),
          "other program's HDF5": (other_program, "not a nasrun checkpoint")}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_resume_falls_back_to_the_older_generation_with_a_warning(tmp_path, pristine, kind):
    d = tmp_path / "exp"
    shutil.copytree(pristine, d)
    damage, fault = DAMAGE[kind]
    damage(str(d / "experiment.h5"))
    rc, out = nasrun(["resume", str(d)], tmp_path)
    assert rc == 0, out
    assert "Traceback" not in out
    assert out.count("nasrun: warning: using checkpoint") == 1, out
    assert f"using checkpoint {d / 'experiment.h5.1'} (generation" in out, out
    assert f"{d / 'experiment.h5'}: " in out and fault in out, out
    snap = load(str(d))  # the resumed run saved a good generation again
    assert [r.status for r in snap.trials] == [DONE] * 4
    assert results(snap) == results(load(str(pristine)))


@pytest.mark.parametrize("np_", [1, 3])
def test_resume_without_a_usable_generation_is_a_clear_error(tmp_path, pristine, np_):
    d = tmp_path / "exp"
    shutil.copytree(pristine, d)
    flip_bytes(str(d / "experiment.h5"))
    other_program(str(d / "experiment.h5.1"))
    rc, out = nasrun(["resume", str(d)], tmp_path, np_=np_)
    assert rc == 2, out
    assert "Traceback" not in out
    assert f"nasrun: error: no usable checkpoint for {d / 'experiment.h5'}" in out
    assert "checksum" in out and "experiment.h5.1: " in out and "not a nasrun checkpoint" in out, out
    assert out.count("nasrun: error:") == 1  # rank 0 speaks, the other ranks leave quietly


def test_changed_spec_is_refused_with_the_differences_and_force_allows_it(tmp_path):
    d = tmp_path / "exp"
    spec = tmp_path / "spec.yaml"
    spec.write_text(TABLE_SPEC.format(seed=0, out=d, nb201=NB201, trials=3))
    rc, out = nasrun(["run", str(spec)], tmp_path)
    assert rc == 0, out
    spec.write_text(TABLE_SPEC.format(seed=1, out=d, nb201=NB201, trials=5))
    rc, out = nasrun(["run", str(spec), "--force", "budget.max_trials"], tmp_path, np_=3)
    assert rc == 2 and "Traceback" not in out, out
    assert "the spec differs from the checkpoint's" in out
    assert "experiment.seed: 0 -> 1" in out and "budget.max_trials" not in out.split("--force")[0]
    assert out.count("nasrun: error:") == 1
    rc, out = nasrun(["run", str(spec)], tmp_path, np_=3)
    assert rc == 2 and "experiment.seed: 0 -> 1" in out and "budget.max_trials: 3 -> 5" in out, out
    assert len(load(str(d)).trials) == 3  # nothing ran
    spec.write_text(TABLE_SPEC.format(seed=0, out=d, nb201=NB201, trials=5))
    rc, out = nasrun(["run", str(spec), "--force", "budget.max_trials"], tmp_path, np_=3)
    assert rc == 0, out
    snap = load(str(d))
    assert sorted(results(snap)) == [0, 1, 2, 3, 4]


def test_a_bad_spec_under_mpirun_is_one_message(tmp_path):
    (tmp_path / "spec.yaml").write_text("experiment: {name: x}\nspace: {builtin: nb201}\n"
                                        "budget: {max_trials: 0}\n")
    rc, out = nasrun(["run", str(tmp_path / "spec.yaml")], tmp_path, np_=3)
    assert rc == 2 and "Traceback" not in out, out
    assert out.count("nasrun: error:") == 1 and "budget.max_trials" in out, out


def test_a_second_writer_under_mpirun_ends_every_rank_at_once(tmp_path):
    """The experiment's lock is taken before the worker ranks wait for work: a run refused for
    a live writer exits (exit 2, the owner named) instead of leaving its workers waiting."""
    d = tmp_path / "exp"
    d.mkdir()
    (d / "experiment.lock").write_text(json.dumps(
        {"host": __import__("socket").gethostname(), "pid": os.getpid()}))  # this test: alive
    (tmp_path / "spec.yaml").write_text(spec_text(str(d), "random", 4))
    job = Job(3, ["run", str(tmp_path / "spec.yaml")], str(tmp_path), mpi_env())
    assert job.wait(120) == 2, job.output
    assert f"being written by another run (pid {os.getpid()}" in job.output
    assert json.loads((d / "experiment.lock").read_text())["pid"] == os.getpid()  # untouched
    assert not (d / "experiment.h5").exists()
