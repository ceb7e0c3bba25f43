"""Pure parts of nasrun.report: pareto_front, budget progress/ETA, group utilization."""
import math

import pytest

from nasrun.report import pareto_front
from nasrun.report.progress import budget_progress, group_utilization
from nasrun.store.base import DONE, FAILED, QUEUED, RUNNING, TrialRecord
from nasrun.trial import Suggestion


def test_pareto_two_objectives_max_min():
    # (accuracy max, params min)
    pts = [(0.90, 100), (0.80, 50), (0.85, 100), (0.95, 400), (0.70, 50), (0.95, 300), (0.60, 10)]
    # 2 is dominated by 0 (same size, lower acc); 4 by 1; 3 by 5 (same acc, larger)
    assert pareto_front(pts, ["max", "min"]) == [0, 1, 5, 6]


def test_pareto_directions_matter():
    pts = [(1, 1), (2, 2), (1, 2), (2, 1)]
    assert pareto_front(pts, ["max", "max"]) == [1]
    assert pareto_front(pts, ["min", "min"]) == [0]
    assert pareto_front(pts, ["max", "min"]) == [3]
    assert pareto_front(pts, ["min", "max"]) == [2]


def test_pareto_ties_nan_empty_and_three_objectives():
    assert pareto_front([(1.0, 2.0), (1.0, 2.0)], ["max", "max"]) == [0, 1]  # equal: both kept
    assert pareto_front([(1.0, math.nan), (0.5, 0.5), (math.nan, 9.0)], ["max", "max"]) == [1]
    assert pareto_front([], ["max", "min"]) == []
    pts = [(1, 1, 1), (2, 0, 0), (0, 2, 0), (0, 0, 2), (0.5, 0.5, 0.5)]
    assert pareto_front(pts, ["max"] * 3) == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        pareto_front([(1, 2)], ["up", "min"])


def rec(i, status, group=None, start=None, end=None):
    return TrialRecord(Suggestion(i, {}), status, None, group, start, end)


def test_budget_progress_eta_by_hand():
    # 4 finished in 150 s: 96 trials/h; 6 more take 225 s; the time budget leaves 850 s
    p = budget_progress({"max_trials": 10, "max_seconds": 1000}, 4, 150.0)
    assert p["fraction"] == pytest.approx(0.4) and p["eta_seconds"] == pytest.approx(225.0)
    assert p["trials_per_hour"] == pytest.approx(96.0)
    # the time budget ends first
    p = budget_progress({"max_trials": 100, "max_seconds": 200}, 4, 150.0)
    assert p["fraction"] == pytest.approx(0.75) and p["eta_seconds"] == pytest.approx(50.0)
    # nothing finished: no pace, so only the time budget gives an ETA
    assert budget_progress({"max_trials": 10}, 0, 30.0)["eta_seconds"] is None
    assert budget_progress({"max_trials": 10, "max_seconds": 100}, 0, 30.0)["eta_seconds"] == 70.0
    done = budget_progress({"max_trials": 10}, 10, 30.0)
    assert done["fraction"] == 1.0 and done["eta_seconds"] == 0.0
    assert budget_progress({}, 3, 30.0)["fraction"] is None


def test_group_utilization_by_hand():
    trials = [rec(0, DONE, 0, 100, 160), rec(1, FAILED, 1, 110, 140), rec(2, DONE, 0, 170, 230),
              rec(3, DONE, 1, 150, 210), rec(4, QUEUED)]
    u = group_utilization(trials, as_of=999.0)  # nothing running: the window ends at the last end
    assert u["window"] == 130.0
    assert u["groups"][0] == {"busy": 120.0, "trials": 2, "failed": 0, "fraction": 120 / 130}
    assert u["groups"][1] == {"busy": 90.0, "trials": 2, "failed": 1, "fraction": 90 / 130}
    # a running trial is busy until the checkpoint's time, which then ends the window
    u = group_utilization(trials + [rec(5, RUNNING, 2, 200, None)], as_of=250.0)
    assert u["window"] == 150.0 and u["groups"][2]["busy"] == 50.0
    assert u["groups"][0]["fraction"] == pytest.approx(120 / 150)
    assert group_utilization([rec(0, QUEUED)], 10.0) == {"window": None, "groups": {}}
