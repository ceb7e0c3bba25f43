"""A stopper under real mpirun: rank 0 stops trials of data-parallel groups (digits, short)."""
import json

import pytest
from click.testing import CliRunner
from test_runtime_mpi import launch

from nasrun.cli import main
from nasrun.store import DONE

pytestmark = [pytest.mark.mpi]

SPEC = """
experiment: {name: t, seed: 0}
space:
  builtin: chain
  options: {kind: cnn, max_layers: 2, widths: [8, 16]}
strategy: {name: random, stopper: {name: curve, threshold: 0.99, min_trials: 1}}
objective:
  type: train
  dataset: {name: digits, valid_fraction: 0.25}
  epochs: 5
  batch_size: 64
  optimizer: {name: adam, lr: 0.01}
budget: {max_trials: 6}
resources: {ranks_per_trial: 2, backend: torch, max_consecutive_failures: 3}
"""


def test_groups_of_two_stop_at_the_same_step_and_status_report_show_it(tmp_path):
    """5 ranks = rank 0 + two groups of two. Once one trial has finished, the curve stopper with
    threshold 0.99 stops every trial it can fit (3 epochs): the leader reads the stop between
    steps without waiting for it, both ranks of the group end at the same step (same parameters)
    and the trial is a finished one, with its partial curve."""
    digests = tmp_path / "digests"
    digests.mkdir()
    p, snap = launch(tmp_path, 5, SPEC, timeout=400, NASRUN_DEBUG_DIGEST_DIR=str(digests))
    assert p.returncode == 0, p.stderr + p.stdout
    assert len(snap.trials) == 6 and all(r.status == DONE for r in snap.trials)
    stopped = [r for r in snap.trials if r.outcome.stopped_at is not None]
    assert len(stopped) >= 2, p.stdout
    for r in snap.trials:
        o = r.outcome
        n = o.stopped_at if o.stopped_at is not None else 5
        assert [c["epoch"] for c in o.curve] == list(range(1, n + 1))
        assert o.metrics["epochs"] == n and o.metrics["valid_accuracy"] == o.curve[-1]["valid_accuracy"]
        ranks = (1, 2) if r.group == 0 else (3, 4)
        a, b = [(digests / f"trial{r.trial_id}_rank{k}.txt").read_text() for k in ranks]
        assert a == b  # both ranks stopped at the same step
    for r in stopped:
        assert 3 <= r.outcome.stopped_at < 5
        assert f"trial {r.trial_id:4d}" in p.stdout
    assert p.stdout.count("stopped after epoch") == len(stopped)
    res = CliRunner().invoke(main, ["status", str(tmp_path / "exp")])
    assert res.exit_code == 0 and f"({len(stopped)} stopped early)" in res.output, res.output
    res = CliRunner().invoke(main, ["report", str(tmp_path / "exp"), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "rep" / "trials.json").read_text())["trials"]
    assert sorted(t["id"] for t in rows if t["stopped_at"] is not None) == \
        sorted(r.trial_id for r in stopped)
