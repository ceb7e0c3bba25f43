"""Stoppers in a run: the spec's strategy.stopper, the driver in one process (deterministic), the
stopper's state through the HDF5 store, status/report, and replays of recorded digits curves."""
import json
import os

import pytest
from click.testing import CliRunner
from test_runtime import HERE, drive, records

from nasrun.cli import main
from nasrun.errors import SpecError
from nasrun.runtime.driver import Driver
from nasrun.spec import parse_spec
from nasrun.stoppers import make_stopper
from nasrun.stoppers.curve import CurveStopper
from nasrun.store import DONE, FAILED, open_store

DATA = os.path.join(HERE, "data", "digits_curves.json")


def stopper_spec(stopper="median", trials=16, strategy="random", fail="[]", directory=None):
    out = f"output_dir: {directory}" if directory else ""
    return f"""
experiment: {{name: s, seed: 1, {out}}}
space: {{builtin: chain, options: {{kind: mlp, max_layers: 3}}}}
strategy: {{name: {strategy}, stopper: {stopper}}}
objective: {{type: function, function: "objectives_for_tests:curves", python_path: ["{HERE}"],
             epochs: 8, options: {{epochs: 8, fail_trials: {fail}}}}}
budget: {{max_trials: {trials}}}
resources: {{max_consecutive_failures: 5}}
"""


# -- the spec ---------------------------------------------------------------------------------
@pytest.mark.parametrize("stopper, path, words", [
    ("medain", "strategy.stopper", "unknown stopper 'medain' (did you mean 'median'?)"),
    ("{name: curve, threshold: 1.5}", "strategy.stopper.threshold", "between 0 and 1"),
    ("{name: curve, grace_epochs: 2}", "strategy.stopper.grace_epochs", "3 points"),
    ("{name: median, min_trials: 0}", "strategy.stopper.min_trials", ">= 1"),
    ("{name: median, min_trials: two}", "strategy.stopper.min_trials", "expected an integer"),
    ("{name: median, patience: 3}", "strategy.stopper.patience", "unknown option of stopper 'median'"),
    ("{name: median, reference: mean}", "strategy.stopper.reference", "expected 'average'"),
    ("{threshold: 0.1}", "strategy.stopper", "needs a name"),
    ("[median]", "strategy.stopper", "expected a stopper name"),
])
def test_bad_stoppers_are_refused_with_the_key_path(stopper, path, words):
    with pytest.raises(SpecError) as e:
        parse_spec(stopper_spec(stopper), "spec.yaml")
    assert e.value.path == path and words in str(e.value), str(e.value)
    assert "spec.yaml" in str(e.value)


def test_a_stopper_is_refused_with_a_multi_fidelity_strategy():
    with pytest.raises(SpecError, match="multi-fidelity.*single-fidelity strategy .*random"):
        parse_spec(stopper_spec(strategy="asha"), "spec.yaml")


def test_validate_prints_the_stopper_and_a_bad_one_exits_2_without_traceback(tmp_path):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(stopper_spec("{name: curve, threshold: 0.2}"))
    bad.write_text(stopper_spec("{name: curve, threshold: 0}"))
    r = CliRunner().invoke(main, ["validate", str(good)])
    assert r.exit_code == 0 and "stopper curve (threshold=0.2, grace_epochs=3" in r.output
    r = CliRunner().invoke(main, ["validate", str(bad)])
    assert r.exit_code == 2 and "strategy.stopper.threshold" in r.output
    assert "Traceback" not in r.output


# -- a run ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["median", "curve"])
def test_stopped_trials_are_finished_with_their_partial_curve(tmp_path, name):
    store = open_store(str(tmp_path / "exp"))
    stopper = "{name: median, min_trials: 2}" if name == "median" else "{name: curve, min_trials: 2}"
    lines = []
    summary, _ = drive(stopper_spec(stopper, fail="[1]"), store, groups=3, lines=lines)
    recs = records(store)
    assert summary["trials"] == 16 and len(recs) == 16
    stopped = [r for r in recs if r.outcome.stopped_at is not None]
    assert len(stopped) >= 3
    for r in recs:
        if r.trial_id == 1:  # failed after a report: the stopper had seen it in flight
            assert r.status == FAILED and r.outcome.stopped_at is None
            continue
        o = r.outcome
        assert r.status == DONE
        n = o.stopped_at if o.stopped_at is not None else 8
        assert [p["epoch"] for p in o.curve] == list(range(1, n + 1))
        assert o.metrics["valid_accuracy"] == o.curve[-1]["valid_accuracy"]  # told its last value
    for r in stopped:
        assert 1 <= r.outcome.stopped_at < 8
        assert f"trial {r.trial_id:4d}" in "\n".join(lines)
    assert sum("stopped after epoch" in ln for ln in lines) == len(stopped)
    # the best trial ran to the end (the curves are noiseless: a stopped one never wins)
    best = max((r for r in recs if r.status == DONE), key=lambda r: r.outcome.metrics["valid_accuracy"])
    assert best.outcome.stopped_at is None


def test_the_stopper_restores_exactly_through_the_hdf5_store(tmp_path):
    """Snapshot + the trials finished after it, or (no snapshot of the stopper) every finished
    trial told again: both give the uninterrupted stopper's state."""
    text = stopper_spec("{name: median, min_trials: 2}", trials=12)
    store = open_store(str(tmp_path / "exp"))
    drive(text, store, groups=3)
    spec = parse_spec(text)
    finished_state = None
    for keep_snapshot in (True, False):
        loaded = open_store(str(tmp_path / "exp")).load()
        assert "stopper" in loaded.strategy_state
        if finished_state is None:
            finished_state = loaded.strategy_state["stopper"]
        if not keep_snapshot:
            loaded.strategy_state = {k: v for k, v in loaded.strategy_state.items() if k != "stopper"}
        d = Driver(spec, text, open_store(str(tmp_path / "x")), _NoTransport(), loaded)
        d._restore(loaded)
        assert d.stopper.state_dict() == finished_state
    replayed = make_stopper("median", 8, min_trials=2)
    for r in sorted(records(store), key=lambda r: r.tell_seq):
        replayed.finished(r.trial_id, [p["valid_accuracy"] for p in r.outcome.curve]
                          if r.status == DONE else None, stopped=r.outcome.stopped_at is not None)
    assert replayed.state_dict() == finished_state
    assert len(finished_state["references"]) >= 2


class _NoTransport:
    from nasrun.runtime.clock import VirtualClock
    clock = VirtualClock(charge=False)
    groups = 0


def test_status_and_report_show_stopped_trials(tmp_path):
    store = open_store(str(tmp_path / "exp"))
    drive(stopper_spec("{name: median, min_trials: 2}"), store, groups=2)
    n = sum(r.outcome.stopped_at is not None for r in records(store))
    assert n > 0
    r = CliRunner().invoke(main, ["status", str(tmp_path / "exp"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["trials"]["stopped"] == n
    r = CliRunner().invoke(main, ["status", str(tmp_path / "exp")])
    assert f"({n} stopped early)" in r.output
    out = tmp_path / "rep"
    r = CliRunner().invoke(main, ["report", str(tmp_path / "exp"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    trials = json.loads((out / "trials.json").read_text())["trials"]
    assert sum(t["stopped_at"] is not None for t in trials) == n
    assert "stopped_at" in (out / "trials.csv").read_text().splitlines()[0]


# -- recorded digits curves (bench/stoppers_digits.py curves) ---------------------------------
def recorded_runs():
    with open(DATA) as f:
        doc = json.load(f)
    assert len(doc["runs"]) == 3
    for run in doc["runs"]:
        assert len(run["trials"]) == 40 and all(len(c) == doc["epochs"] for c in run["trials"])
    return doc["epochs"], doc["runs"]


def replay(stopper, trials, epochs, on_report=None):
    """The trials, in order, through ``stopper`` as the one-group run would have told them:
    (epochs trained, final best). ``on_report(stopper, curve so far, decision)`` sees each ask."""
    used, best = 0, None
    for tid, curve in enumerate(trials):
        n = epochs
        for t in range(1, epochs + 1):
            stop = stopper.should_stop(tid, curve[:t])
            if on_report is not None:
                on_report(stopper, curve[:t], stop)
            if stop:
                n = t
                break
        stopper.finished(tid, curve[:n], stopped=n < epochs)
        used += n
        best = curve[n - 1] if best is None else max(best, curve[n - 1])
    return used, best


# measured on these curves (recorded before curve's envelope and vote): median 3.08x with its
# defaults (2.36x with the previous ones, reference: average, min_trials: 5), curve 1.43x; every
# run's final best within 0.5 points of its no-stopper best (the issue's tolerance: seed 1's best
# trial, whose last epoch jumped from 0.86 to 0.99, is stopped by median after epoch 1, by curve
# after 4: -0.22)
@pytest.mark.parametrize("name, fewer", [("median", 2.8), ("curve", 1.35)])
def test_replayed_digits_curves_save_epochs_and_keep_the_best(name, fewer):
    epochs, runs = recorded_runs()
    total = used = 0
    for run in runs:
        trials = run["trials"]
        n, best = replay(make_stopper(name, epochs), trials, epochs)
        full_best = max(c[-1] for c in trials)
        assert best >= full_best - 0.005, (run["seed"], best, full_best)
        total, used = total + len(trials) * epochs, used + n
    assert total / used >= fewer, (total, used)


def test_median_reference_average_or_value_at_the_epoch():
    """Golovin's rule compares with the running averages of the finished trials, Optuna's with
    their values at the epoch: a trial between the two medians goes on under the first only."""
    finished = [[0.2, 0.6, 0.9], [0.3, 0.7, 0.9], [0.1, 0.5, 0.8]]  # at epoch 2: averages .4 .5 .3
    rules = {ref: make_stopper("median", 3, min_trials=3, reference=ref) for ref in ("average", "value")}
    for rule in rules.values():
        for i, curve in enumerate(finished):
            rule.finished(i, curve)
    trial = [0.3, 0.45]  # best 0.45: above the averages' median (0.4), below the values' (0.6)
    assert not rules["average"].should_stop(9, trial)
    assert rules["value"].should_stop(9, trial)
    assert not rules["value"].should_stop(9, [0.3, 0.65])
    again = make_stopper("median", 3, min_trials=3, reference="value")
    again.load_state_dict(rules["value"].state_dict())
    assert again.should_stop(9, trial)


def test_median_on_values_stops_more_of_the_recorded_digits_curves():
    epochs, runs = recorded_runs()
    used = {}
    for ref in ("average", "value"):
        used[ref] = sum(replay(make_stopper("median", epochs, reference=ref), run["trials"], epochs)[0]
                        for run in runs)
    assert used["value"] < used["average"], used


def test_curve_decides_as_the_majority_of_all_its_fitted_families():
    """The lazy vote (families fitted only until it is decided, none while the envelope reaches
    the best) answers what fitting every family would, at every report of the recorded runs."""
    epochs, runs = recorded_runs()
    seen = {"stop": 0, "go": 0, "reached": 0}

    def check(s, curve, stop):
        if len(curve) < 3 or len(curve) >= epochs or s.count < s.opts["min_trials"]:
            assert not stop
            return
        if max(curve) >= s.best:
            assert not stop
            seen["reached"] += 1
            return
        probs = s.probabilities(curve, s.best)
        below = sum(p < s.opts["threshold"] for p in probs)
        assert stop == (below > len(probs) - below), (curve, probs)
        seen["stop" if stop else "go"] += 1

    for run in runs:
        replay(make_stopper("curve", epochs), run["trials"], epochs, check)
    assert min(seen.values()) >= 20, seen


class _Votes(CurveStopper):
    """A curve stopper whose families answer given probabilities (None: not fitted)."""

    def __init__(self, probs, **options):
        super().__init__(10, **options)
        self.probs, self.asked = probs, 0
        self.best, self.count = 0.99, 5

    def _probabilities(self, x, y, best):
        for p in self.probs:
            self.asked += 1
            yield p


@pytest.mark.parametrize("probs, stop, asked", [
    ([0.01, 0.01, 0.01, 0.01, 0.02, 0.99], True, 4),  # one wild family: the mixture's 0.175 kept it
    ([0.01, 0.01, 0.01, 0.9, 0.9, 0.9], False, 6),  # a tie is no majority
    ([0.9, 0.9, 0.9, 0.01, 0.01, 0.01], False, 3),  # three of six can no longer be outvoted:
    ([0.9, 0.01, 0.9, 0.9, 0.01, 0.01], False, 4),  # the rest (the costly fits) are not made
    ([None, 0.01, None, 0.01, 0.9, None], True, 6),  # two of the three that fitted
    ([None] * 6, False, 6),
])
def test_curve_stops_on_a_majority_of_families_and_fits_no_more_than_it_needs(probs, stop, asked):
    s = _Votes(probs)
    assert s.should_stop(0, [0.5, 0.6, 0.65, 0.66]) is stop
    assert s.asked == asked


def test_curve_judges_the_envelope_a_dip_changes_nothing_and_a_trial_at_the_best_goes_on():
    s = make_stopper("curve", 10)
    for tid in range(3):
        s.finished(tid, [0.5, 0.8, 0.9, 0.95, 0.97, 0.98, 0.985, 0.99, 0.99, 0.99])
    plateau = [0.6, 0.8, 0.86, 0.88, 0.885, 0.89, 0.89, 0.89, 0.89]
    dipped = plateau[:3] + [0.3] + plateau[4:]  # one noisy epoch loses 58 points
    assert [s.should_stop(9, plateau[:t]) for t in range(3, 10)] \
        == [s.should_stop(9, dipped[:t]) for t in range(3, 10)]
    assert s.should_stop(9, dipped[:6])  # 0.89 against 0.99 with a flat envelope: stopped
    reached = [0.6, 0.99, 0.7, 0.7, 0.7, 0.7, 0.7]  # has matched the best once: never stopped
    assert not any(s.should_stop(9, reached[:t]) for t in range(3, 8))


def test_a_trial_continued_from_a_checkpoint_reports_its_whole_curve():
    """Rank 0 keeps nothing per trial in flight: a trial resumed from its epoch-3 state sends the
    state's epochs with each new one, and a stop read between steps is answered too."""
    from nasrun.runtime.worker import Hooks, TrialRunner
    from nasrun.store.base import ModelState
    sent, stops = [], set()
    hooks = Hooks()
    hooks.progress = lambda tid, epoch, curve: sent.append((tid, epoch, curve)) or False
    hooks.stop_requested = lambda tid: tid in stops
    state = ModelState(7, 3, {}, {"curve": [{"epoch": e, "valid_accuracy": 0.1 * e} for e in (1, 2, 3)]})
    report = TrialRunner._reporter(7, hooks, state)
    assert report(4, {"epoch": 4, "valid_accuracy": 0.4}) is False
    tid, epoch, curve = sent[-1]
    assert (tid, epoch) == (7, 4) and [p["valid_accuracy"] for p in curve] == [0.1, 0.2, 0.1 * 3, 0.4]
    stops.add(7)
    assert report(5, {"epoch": 5, "valid_accuracy": 0.5}) is True
    assert [p["epoch"] for p in sent[-1][2]] == [1, 2, 3, 4, 5]
    assert [p["epoch"] for p in sent[0][2]] == [1, 2, 3, 4]  # a value, not a view that grows
