import os

import pytest

from nasrun.errors import CheckpointError, Resumable, RunFailed
from nasrun.runtime.api import run_experiment
from nasrun.runtime.specdiff import spec_differences
from nasrun.spec import parse_spec
from nasrun.store import DONE, FAILED, MemoryStore, ModelState, RUNNING

HERE = os.path.dirname(os.path.abspath(__file__))


def fn_spec(trials=5, options="{}", extra=""):
    return f"""
experiment: {{name: f, seed: 3}}
space: {{builtin: chain, options: {{kind: mlp, max_layers: 3}}}}
objective: {{type: function, function: "objectives_for_tests:score", python_path: ["{HERE}"],
             options: {options}}}
budget: {{max_trials: {trials}}}
resources: {{max_consecutive_failures: 2}}
{extra}
"""


class FakeComm:
    def Get_rank(self):
        return 0

    def Get_size(self):
        return 1


def run(text, store, **kw):
    return run_experiment(parse_spec(text), text, store, comm=FakeComm(), progress=False, **kw)


def test_budget_of_trials_all_valid():
    store = MemoryStore()
    summary = run(fn_spec(6), store)
    snap = store.load()
    assert summary["trials"] == 6 and len(snap.trials) == 6
    space = parse_spec(fn_spec()).make_space()
    for r in snap.trials:
        assert r.status == DONE and space.contains(r.suggestion.config)
        assert r.outcome.metrics["valid_accuracy"] == 1 / (1 + r.suggestion.config["num_layers"])
    assert store.saves >= 6
    assert snap.strategy_state["next_id"] == 6 and snap.runtime_state["elapsed_seconds"] > 0


def test_failed_trial_is_recorded_with_traceback_and_run_goes_on(capsys):
    store = MemoryStore()
    run(fn_spec(4, "{fail_trials: [1]}"), store)
    snap = store.load()
    st = {r.trial_id: r for r in snap.trials}
    assert st[1].status == FAILED and "Traceback" in st[1].outcome.error
    assert "planned failure of trial 1" in st[1].outcome.error
    assert [st[i].status for i in (0, 2, 3)] == [DONE] * 3
    assert "planned failure of trial 1" in capsys.readouterr().out


def test_consecutive_failures_stop_the_run():
    store = MemoryStore()
    with pytest.raises(RunFailed, match="2 consecutive trials failed"):
        run(fn_spec(6, "{fail_trials: [1, 2]}"), store)
    assert [r.status for r in store.load().trials] == [DONE, FAILED, FAILED]


def test_signal_checkpoints_and_resume_continues():
    store = MemoryStore()
    text = fn_spec(5, "{signal_trials: [1]}")
    with pytest.raises(Resumable):
        run(text, store)
    snap = store.load()
    assert [r.status for r in snap.trials] == [DONE, DONE]  # the running trial finished, then exit
    # pretend trial 2 was in flight with a saved epoch: it is re-dispatched with its state
    from nasrun.store import TrialRecord
    spec = parse_spec(text)
    strat = spec.make_strategy()
    strat.load_state_dict(snap.strategy_state)
    s = strat.ask()
    snap.trials.append(TrialRecord(s, RUNNING, group=0, start=1.0))
    snap.strategy_state = strat.state_dict()
    snap.models[s.trial_id] = ModelState(s.trial_id, 1, meta={"curve": []})
    store.save(snap)
    text2 = fn_spec(5, "{}")
    with pytest.raises(CheckpointError, match=r"objective.options.signal_trials: \[1\] -> \(absent\)"):
        run(text2, store)
    run(text2, store, force=["objective.options"])
    final = store.load()
    assert [r.status for r in final.trials] == [DONE] * 5
    resumed = {r.trial_id: r for r in final.trials}[s.trial_id]
    assert resumed.suggestion == s and resumed.outcome.metrics["seen_state"] == 1.0
    assert final.models == {}  # nothing in flight any more


def test_spec_differences_pure():
    old = {"budget": {"max_trials": 20, "max_seconds": None}, "space": {"builtin": "chain"}}
    new = {"budget": {"max_trials": 40, "max_seconds": None}, "space": {"builtin": "nb201"},
           "extra": 1}
    refused, ok = spec_differences(old, new, ["budget"])
    assert ok == ["budget.max_trials: 20 -> 40"]
    assert refused == ["extra: (absent) -> 1", "space.builtin: 'chain' -> 'nb201'"]
    assert spec_differences(old, old) == ([], [])
    assert spec_differences(old, new, ["budget.max"])[0][0].startswith("budget.max_trials")


def test_single_rank_trains_in_process(digits_spec_text):
    store = MemoryStore()
    text = digits_spec_text(trials=2, limit=400)
    run(text, store)
    snap = store.load()
    assert [r.status for r in snap.trials] == [DONE, DONE]
    assert all(r.outcome.metrics["params"] > 0 and len(r.outcome.curve) == 1 for r in snap.trials)
