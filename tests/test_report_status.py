"""nasrun status: budget ETA and group utilization of a tiny experiment, computed by hand; --watch."""
import importlib
import json

import h5py
import pytest
from click.testing import CliRunner

from nasrun.cli import main
from nasrun.store.base import DONE, FAILED, QUEUED, RUNNING, TrialRecord
from nasrun.store.sample import write_experiment
from nasrun.trial import Outcome, Suggestion

SPEC = ("experiment: {name: tiny}\nobjective: {metric: valid_accuracy, mode: max}\n"
        "budget: {max_trials: 10, max_seconds: 1000}\n")


def tiny(directory, extra=(), elapsed=150.0):
    """Write the tiny experiment into ``directory`` (job 77 ran it)."""
    def rec(i, st, g, a, b, acc=None):
        out = Outcome(i, DONE, {"valid_accuracy": acc}) if st == DONE else (
            Outcome.failure(i, "OSError: disk full") if st == FAILED else None)
        return TrialRecord(Suggestion(i, {"x": i}), st, out, g, a, b)
    trials = [rec(0, DONE, 0, 100.0, 160.0, 0.5), rec(1, FAILED, 1, 110.0, 140.0),
              rec(2, DONE, 0, 170.0, 230.0, 0.7), rec(3, DONE, 1, 150.0, 210.0, 0.6),
              rec(4, QUEUED, None, None, None), *extra]
    write_experiment(str(directory), trials, SPEC, runtime={"elapsed_seconds": elapsed},
                     jobs=["77"])


def status(*args):
    return CliRunner(env={"COLUMNS": "200"}).invoke(main, ["status", *map(str, args)])


def test_eta_and_utilization_by_hand(tmp_path):
    tiny(tmp_path)
    rep = json.loads(status(tmp_path, "--json").output)
    # 4 finished (3 done + 1 failed) in 150 s of run time: 96 trials/h; 6 more need 225 s, before
    # max_seconds (850 s left); progress max(4/10, 150/1000)
    p = rep["progress"]
    assert p["fraction"] == pytest.approx(0.4) and p["eta_seconds"] == pytest.approx(225.0)
    assert p["trials_per_hour"] == pytest.approx(96.0) and rep["ended"] is False
    # nothing running: window = last end 230 - first start 100 = 130 s; group 0 busy 60+60,
    # group 1 busy 30+60 (one failed)
    u = rep["utilization"]
    assert u["window_seconds"] == 130.0
    assert u["groups"] == [{"group": 0, "busy": 120.0, "trials": 2, "failed": 0, "fraction": 120 / 130},
                           {"group": 1, "busy": 90.0, "trials": 2, "failed": 1, "fraction": 90 / 130}]
    assert rep["best"][0]["trial_id"] == 2 and rep["jobs"] == ["77"]
    assert rep["elapsed_seconds"] == 150.0
    out = status(tmp_path).output
    assert "40% of 10 trials / 16m40s" in out
    assert "elapsed 2m30s, ETA 3m45s at 96 trials/h" in out
    assert "best so far: trial 2, valid_accuracy 0.7" in out
    assert "92%" in out and "69%" in out and "2m10s" in out  # utilization and the window


def test_running_trial_busy_until_the_checkpoint(tmp_path):
    run = TrialRecord(Suggestion(5, {"x": 5}), RUNNING, None, 2, 200.0, None)
    tiny(tmp_path, [run])
    with h5py.File(tmp_path / "experiment.h5", "r") as f:
        saved_at = float(f.attrs["saved_at"])
    u = json.loads(status(tmp_path, "--json").output)["utilization"]
    assert u["window_seconds"] == pytest.approx(saved_at - 100.0)
    g2 = u["groups"][2]
    assert g2["group"] == 2 and g2["busy"] == pytest.approx(saved_at - 200.0)
    assert g2["fraction"] == pytest.approx((saved_at - 200.0) / (saved_at - 100.0))


def test_watch_refreshes_until_the_run_ends(tmp_path, monkeypatch):
    tiny(tmp_path)
    sleeps = []

    def fake_sleep(s):  # the run goes on while status waits: the budget is spent at the 2nd save
        sleeps.append(s)
        tiny(tmp_path, elapsed=1000.0 if len(sleeps) == 2 else 150.0 + 10 * len(sleeps))

    monkeypatch.setattr(importlib.import_module("nasrun.commands.status").time, "sleep", fake_sleep)
    r = status(tmp_path, "--watch", 0.5)
    assert r.exit_code == 0, r.output
    assert sleeps == [0.5, 0.5] and "ended" in r.output and "100% of 10 trials" in r.output


def test_watch_stops_quietly_on_ctrl_c(tmp_path, monkeypatch):
    tiny(tmp_path)

    def interrupt(s):
        raise KeyboardInterrupt
    monkeypatch.setattr(importlib.import_module("nasrun.commands.status").time, "sleep", interrupt)
    r = status(tmp_path, "--watch", 1)
    assert r.exit_code == 0 and "ETA 3m45s" in r.output


def test_watch_rejects_non_positive_interval(tmp_path):
    tiny(tmp_path)
    r = status(tmp_path, "--watch", 0)
    assert r.exit_code == 2 and "Traceback" not in r.output
