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
import warnings

import pytest

from conftest import mpi_env
from mpi_jobs import NB201, TESTS, Job
from nasrun.store import DONE, CheckpointWarning, open_store

pytestmark = [pytest.mark.mpi, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("mpirun") is None, reason="needs mpirun")]


def spec_text(out_dir, strategy="random", trials=100, sleep=0.05, seed=3):
    strat = {"random": "{name: random}",
             "evolution": "{name: evolution, options: {population_size: 6, sample_size: 3}}"}[strategy]
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
"""


def load(d):
    with warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointWarning)  # a kill is no corruption
        return open_store(d).load()


def results(snap):
    ids = [r.trial_id for r in snap.trials]
    assert len(ids) == len(set(ids)), f"duplicate trial ids: {ids}"
    return {r.trial_id: (json.dumps(r.suggestion.config, sort_keys=True), r.outcome.metrics)
            for r in snap.trials if r.status == DONE}


def tmp_stat(d):
    try:
        st = os.stat(os.path.join(d, "experiment.h5.tmp"))
        return st.st_ino, st.st_mtime_ns
    except FileNotFoundError:
        return None


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
        args = ["resume", d] if has_ckpt and rnd % 2 else ["run", spec]
        uses.add(args[0])
        before = tmp_stat(d)
        job = Job(np_, args, str(tmp_path), env)
        if rnd == kills:  # the last round runs to the end
            assert job.wait(300) == 0, job.output
            break
        # a few trials finished in this round, then a random instant
        running = job.wait_until(lambda: job.finished_lines() >= 2, 120, "two finished trials")
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
        after = tmp_stat(d)
        mid_write += after is not None and after != before
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


def test_evolution_with_one_group_killed_and_resumed_equals_uninterrupted(tmp_path):
    """Evolution's asks depend on results: with one group the whole sequence must be identical."""
    trials = 40
    final, out = kill_and_resume(tmp_path, "evolution", trials, [2], kills=3)
    ref = reference(tmp_path, "evolution", trials, 2)
    got = results(final)
    assert sorted(got) == list(range(trials)), out
    assert got == results(ref)
    # the strategy ends in the same state (population, RNG, counter)
    assert json.dumps(final.strategy_state, sort_keys=True, default=str) == \
        json.dumps(ref.strategy_state, sort_keys=True, default=str)
