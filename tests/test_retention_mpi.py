"""Retention under mpirun: ASHA over 200 trials of a tiny real training objective keeps only the
states some decision can still use, and rank 0's memory does not grow with the trials."""
import os
import re

import pytest
from mpi_jobs import TESTS, Job

from nasrun.spec import parse_spec
from nasrun.store import open_store
from nasrun.store.replay import restore_strategy
from nasrun.view import ExperimentView

KEEP_BEST = 3


def spec_text(d, trials):
    return f"""
experiment: {{name: retention, seed: 1, output_dir: {d}}}
space: {{builtin: chain, options: {{kind: mlp, max_layers: 3}}}}
strategy: {{name: asha, options: {{eta: 3}}}}
objective: {{type: function, function: "objectives_for_tests:tiny_train", python_path: ["{TESTS}"],
             fidelity: {{min: 1, max: 9, integer: true}}}}
budget: {{max_trials: {trials}}}
checkpoint: {{keep_best: {KEEP_BEST}, every_epochs: 1}}
"""


def run(tmp_path, name, trials):
    d = tmp_path / name
    (tmp_path / f"{name}.yaml").write_text(spec_text(d, trials))
    job = Job(3, ["run", str(tmp_path / f"{name}.yaml")], str(tmp_path))
    assert job.wait(600) == 0, job.output
    m = re.search(r"rank 0 peak memory (\d+) MB", job.output)
    assert m, job.output[-3000:]
    return d, float(m.group(1))


@pytest.mark.mpi
@pytest.mark.slow
def test_asha_keeps_only_usable_states_and_rank_0_memory_stays_flat(tmp_path):
    d50, rss50 = run(tmp_path, "a50", 50)
    d200, rss200 = run(tmp_path, "a200", 200)
    assert rss200 <= 1.10 * rss50, (rss50, rss200)

    text = spec_text(d200, 200)
    spec = parse_spec(text)
    loaded = open_store(str(d200)).load()
    st = loaded.state
    finished = list(st.finished_records())
    assert len(finished) == 200 and not st.live
    strategy = spec.make_strategy()
    restore_strategy(strategy, loaded)  # the strategy as it was at the end of the run
    promotable = {r.trial_id for r in finished if strategy.promotable(r.trial_id)}
    best = {r.trial_id for r in ExperimentView.from_spec(spec).top(finished, KEEP_BEST)}
    kept = set(st.refs)
    # every state kept is usable: promotable, or among keep_best (nothing is in flight at the end)
    assert kept <= promotable | best, sorted(kept - promotable - best)
    # (a trial released while it ranked far below its rung's threshold may become promotable
    # again as the rung grows: ASHA then restarts it from scratch; so promotable <= kept need
    # not hold, by design, see ASHA.promotable)
    assert best <= kept and len(kept & promotable) >= len(promotable) // 2
    files = {f for f in os.listdir(d200 / "experiment.weights") if f.endswith(".h5")}
    assert files == {ref.file for refs in st.refs.values() for ref in refs}
    assert all(len(refs) == 1 for refs in st.refs.values())  # one final state per finished trial
    # bounded: ASHA keeps about STATE_WINDOW per rung below the top, not one per trial told
    assert len(files) < 200 / 3, len(files)
    # promotions did continue from saved states (a promoted trial starts at its parent's epoch)
    promoted = [r for r in finished if r.suggestion.resume_from is not None]
    assert promoted and any(r.outcome.metrics.get("start_epoch", 0) > 0 for r in promoted)
