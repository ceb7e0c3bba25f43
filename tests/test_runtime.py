"""The driver in one process: N groups on a virtual clock, deterministic, without mpirun.

Durations come from the objective's ``train_seconds`` (objectives_for_tests.timed), the clock
does not charge the driver's CPU time, so every run of a test gives the same events in the same
order. The MPI transport has its own tests (test_runtime_mpi, test_resume_mpi, test_signals_mpi).
"""
import math
import os

import pytest
import torch

from nasrun.errors import CheckpointError, Resumable, RunFailed
from nasrun.objectives import make_objective
from nasrun.runtime.api import check_resume, run_experiment
from nasrun.runtime.clock import VirtualClock
from nasrun.runtime.driver import Driver
from nasrun.runtime.local import LocalTransport
from nasrun.runtime.specdiff import spec_differences
from nasrun.runtime.worker import TrialRunner
from nasrun.spec import parse_spec
from nasrun.store import DONE, FAILED, MemoryStore, open_store
from nasrun.store.events import Asked, Started
from nasrun.train.backends import LocalBackend

HERE = os.path.dirname(os.path.abspath(__file__))


def fn_spec(trials=5, options="{}", extra="", function="timed", strategy="{name: random}",
            resources=""):
    return f"""
experiment: {{name: f, seed: 3}}
space: {{builtin: chain, options: {{kind: mlp, max_layers: 3}}}}
strategy: {strategy}
objective: {{type: function, function: "objectives_for_tests:{function}", python_path: ["{HERE}"],
             options: {options}}}
budget: {{max_trials: {trials}}}
resources: {{max_consecutive_failures: 3 {resources}}}
{extra}
"""


class FakeComm:
    def Get_rank(self):
        return 0

    def Get_size(self):
        return 1


def run(text, store, **kw):
    return run_experiment(parse_spec(text), text, store, comm=FakeComm(), progress=False, **kw)


def drive(text, store, groups=4, lines=None):
    """One deterministic run with ``groups`` simulated groups; returns (summary, transport)."""
    spec = parse_spec(text)
    runner = TrialRunner(spec, make_objective(spec), LocalBackend(), torch.device("cpu"),
                         store.states, wall_time_limit=False)
    transport = LocalTransport(runner, groups, VirtualClock(charge=False),
                               lambda o, s, wall: float(o.metrics.get("train_seconds", 1.0)),
                               spec.resources.trial_time_limit)
    out = lines if lines is not None else []
    loaded = store.load()
    if loaded is not None:
        check_resume(loaded, spec)
    summary = Driver(spec, text, store, transport, loaded, echo=out.append, progress=False).run()
    return summary, transport


def records(store):
    return sorted(store.load().state.all_records(), key=lambda r: r.trial_id)


# -- through run_experiment (measured durations) -----------------------------------------------
def test_budget_of_trials_all_valid():
    store = MemoryStore()
    summary = run(fn_spec(6, function="score"), store)
    recs = records(store)
    assert summary["trials"] == 6 and len(recs) == 6
    space = parse_spec(fn_spec()).make_space()
    for r in recs:
        assert r.status == DONE and space.contains(r.suggestion.config)
        assert r.outcome.metrics["valid_accuracy"] == 1 / (1 + r.suggestion.config["num_layers"])
    loaded = store.load()
    assert loaded.strategy_state["next_id"] == 6 and loaded.runtime["elapsed_seconds"] > 0


def test_failed_trial_is_recorded_with_traceback_and_run_goes_on(capsys):
    store = MemoryStore()
    run(fn_spec(4, "{fail_trials: [1]}", function="score"), store)
    st = {r.trial_id: r for r in records(store)}
    assert st[1].status == FAILED and "Traceback" in st[1].outcome.error
    assert "planned failure of trial 1" in st[1].outcome.error
    assert [st[i].status for i in (0, 2, 3)] == [DONE] * 3
    assert "planned failure of trial 1" in capsys.readouterr().out


def test_consecutive_failures_stop_the_run():
    store = MemoryStore()
    with pytest.raises(RunFailed, match="3 consecutive trials failed"):
        run(fn_spec(6, "{fail_trials: [1, 2, 3]}", function="score"), store)
    assert [r.status for r in records(store)] == [DONE, FAILED, FAILED, FAILED]


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
    recs = records(store)
    assert [r.status for r in recs] == [DONE, DONE]
    assert all(r.outcome.metrics["params"] > 0 and len(r.outcome.curve) == 1 for r in recs)


def test_trial_time_limit_is_enforced_for_function_objectives():
    store = MemoryStore()
    text = fn_spec(2, "{sleep: 3.0}", function="sleeper", resources=", trial_time_limit: 0.5")
    run(text, store)
    rec = records(store)
    assert rec and all(r.status == FAILED and "time limit (0.5s) exceeded" in r.outcome.error
                       for r in rec)


# -- several groups, deterministic -------------------------------------------------------------
def test_four_groups_run_asynchronously_and_deterministically():
    runs = []
    for _ in range(2):
        store = MemoryStore()
        _, t = drive(fn_spec(30), store, groups=4)
        runs.append(records(store))
    a, b = runs
    assert [(r.trial_id, r.group, r.start, r.end) for r in a] == \
        [(r.trial_id, r.group, r.start, r.end) for r in b]
    assert len(a) == 30 and {r.group for r in a} == {0, 1, 2, 3}
    # a group gets its next trial the moment its previous one ends: never waits for another
    by_group = {}
    for r in sorted(a, key=lambda r: r.start):
        by_group.setdefault(r.group, []).append(r)
    for rs in by_group.values():
        assert rs[0].start == 0.0
        for prev, nxt in zip(rs, rs[1:]):
            assert nxt.start == prev.end
    # results were told out of order (groups finish at different times)
    finish_order = [r.trial_id for r in sorted(a, key=lambda r: (r.end, r.tell_seq))]
    assert finish_order != sorted(finish_order)


def test_max_trials_is_never_exceeded_with_many_groups():
    store = MemoryStore()
    summary, _ = drive(fn_spec(7), store, groups=10)
    recs = records(store)
    assert summary["trials"] == 7 and len(recs) == 7 and all(r.status == DONE for r in recs)


def test_wait_leaves_groups_idle_until_a_result_comes():
    store = MemoryStore()
    text = fn_spec(12, function="stateful", options="{epochs: 4}",
                   strategy="{name: hyperband, options: {min_budget: 1, max_budget: 4, eta: 2, "
                            "max_brackets: 1}}")
    text = text.replace("objective: {type: function", "objective: {type: function, "
                        "fidelity: {min: 1, max: 4, integer: true}")
    drive(text, store, groups=6)
    recs = records(store)
    assert len(recs) == 12
    # bracket rungs are synchronous: a promoted trial never starts before its whole rung ended,
    # and it continues from the state its lower-rung trial left
    by_id = {r.trial_id: r for r in recs}
    promoted = [r for r in recs if r.suggestion.resume_from is not None]
    assert promoted
    for r in promoted:
        info = r.suggestion.info
        lower = [x for x in recs if x.suggestion.info.get("bracket") == info["bracket"]
                 and x.suggestion.info.get("rung") == info["rung"] - 1]
        assert all(x.end <= r.start for x in lower)
        assert r.outcome.metrics["start_epoch"] == by_id[r.suggestion.resume_from].suggestion.budget


def test_a_simulated_trial_past_its_time_limit_fails():
    store = MemoryStore()
    drive(fn_spec(6, "{seconds: 100}", resources=", trial_time_limit: 110"), store, groups=2)
    recs = records(store)
    long = [r for r in recs if r.suggestion.config["num_layers"] >= 2]
    assert long and all(r.status == FAILED and "time limit (110s)" in r.outcome.error for r in long)
    assert all(r.end - r.start == 110 for r in long)


def test_a_non_finite_metric_is_a_failure_that_counts():
    store = MemoryStore()
    with pytest.raises(RunFailed, match="consecutive"):
        drive(fn_spec(10, "{nan_trials: [0, 1, 2, 3, 4, 5]}"), store, groups=1)
    recs = records(store)
    assert [r.status for r in recs] == [FAILED] * 3
    assert "is not finite (nan)" in recs[0].outcome.error


def test_signal_mid_run_checkpoints_and_resume_on_more_groups_finishes(tmp_path):
    store = open_store(str(tmp_path))
    text = fn_spec(20, "{signal_trials: [9]}", function="stateful", strategy="{name: evolution, "
                   "options: {population_size: 4, sample_size: 2}}")
    text = text.replace("options: {signal_trials",
                        f"options: {{epochs: 3, run_key: {tmp_path.name}, signal_trials")
    lines = []
    with pytest.raises(Resumable):
        drive(text, store, groups=4, lines=lines)
    loaded = open_store(str(tmp_path)).load()
    live = loaded.state.live
    assert live and all(r.status == "queued" for r in live.values())  # given back cleanly
    assert all(r.attempts == 0 for r in live.values())
    assert any("signal received" in ln for ln in lines)
    before = {r.trial_id: r for r in loaded.state.finished_records()}
    # trial 9 sent the signal while it ran: it was not lost
    text2 = text.replace("signal_trials: [9]", "signal_trials: []")
    store2 = open_store(str(tmp_path))
    with pytest.raises(CheckpointError, match="objective.options.signal_trials"):
        drive(text2, store2, groups=6)
    text3 = text  # the same spec (the function signals once per process)
    store3 = open_store(str(tmp_path))
    summary, _ = drive(text3, store3, groups=6)
    recs = records(store3)
    assert summary["trials"] == 20 and len(recs) == 20
    assert len({r.trial_id for r in recs}) == 20 and all(r.status == DONE for r in recs)
    for r in recs:
        if r.trial_id in before:
            assert r.outcome == before[r.trial_id].outcome and r.end == before[r.trial_id].end
    resumed = [r for r in recs if r.trial_id in live]
    assert {r.trial_id for r in resumed} == set(live)
    assert {r.suggestion.to_dict()["config"].__repr__() for r in resumed} == \
        {live[t].suggestion.to_dict()["config"].__repr__() for t in live}
    # the states saved before the signal were used
    assert any(r.outcome.metrics["start_epoch"] > 0 for r in resumed)
    assert not set(store3.load().state.refs) & set(live)  # no in-flight state is left


def test_resume_with_one_group_asks_what_the_uninterrupted_run_asked(tmp_path):
    text = fn_spec(24, strategy="{name: evolution, options: {population_size: 5, sample_size: 2}}")
    ref_store = MemoryStore()
    drive(text, ref_store, groups=1)
    want = [(r.trial_id, dict(r.suggestion.config)) for r in records(ref_store)]
    # the same run, stopped by a signal at trial 11, continued in a new process-like store
    sig = text.replace("options: {}", "options: {signal_trials: [11]}")
    with pytest.raises(Resumable):
        drive(sig, open_store(str(tmp_path)), groups=1)
    drive(sig, open_store(str(tmp_path)), groups=1)
    got = [(r.trial_id, dict(r.suggestion.config)) for r in records(open_store(str(tmp_path)))]
    assert got == want


def test_a_trial_whose_rank_died_too_often_is_failed_and_the_search_goes_on(tmp_path):
    store = open_store(str(tmp_path))
    text = fn_spec(4)
    spec = parse_spec(text)
    strat = spec.make_strategy()
    s = strat.ask()
    store.begin(text, "t", None)
    store.commit({})
    store.log(Asked(0, s))
    for _ in range(spec.resources.max_attempts):  # started twice, never answered: killed twice
        store.log(Started(0, 1, 1.0))
    store.close()
    lines = []
    drive(text, open_store(str(tmp_path)), groups=2, lines=lines)
    recs = records(open_store(str(tmp_path)))
    assert recs[0].status == FAILED and "the rank died" in recs[0].outcome.error
    assert len(recs) == 4 and [r.status for r in recs[1:]] == [DONE] * 3
    assert any("the rank died" in ln for ln in lines)


def test_states_are_kept_only_while_something_can_use_them(tmp_path):
    store = open_store(str(tmp_path))
    text = fn_spec(12, "{epochs: 3}", function="stateful",
                   extra="checkpoint: {keep_best: 2, every_epochs: 1, every_seconds: 0.001}")
    drive(text, store, groups=3)
    loaded = open_store(str(tmp_path)).load()
    refs = loaded.state.refs
    best = sorted((r for r in loaded.state.finished_records()),
                  key=lambda r: -r.outcome.metrics["valid_accuracy"])
    assert set(refs) <= {r.trial_id for r in best[:2]} and len(refs) == 2
    files = set(os.listdir(tmp_path / "experiment.weights"))
    assert {rs[-1].file for rs in refs.values()} == {f for f in files if f.endswith(".h5")}
    assert not math.isnan(best[0].outcome.metrics["w0"])


def _damage_tensor(path):
    import h5py
    with h5py.File(path, "r") as f:
        ds = next(f["tensors"][k] for k in f["tensors"])
        off = ds.id.get_offset()  # inside the tensor's data: only the checksum can tell
    with open(path, "r+b") as f:
        f.seek(off)
        b = f.read(4)
        f.seek(off)
        f.write(bytes(x ^ 0xFF for x in b))


@pytest.mark.parametrize("damaged,start", [([2], 1), ([1, 2], 0)])
def test_a_damaged_state_written_by_a_group_falls_back_to_the_older_one(tmp_path, damaged, start):
    """An in-flight trial with states of epochs 1 and 2: the newest damaged, it continues from
    epoch 1; both damaged, it restarts from scratch; the log says which and why."""
    import numpy as np

    from nasrun.store import ModelState
    from nasrun.store.events import StateSaved
    text = fn_spec(1, "{epochs: 3}", function="stateful",
                   extra="checkpoint: {keep_best: 0, every_epochs: 1}")
    spec = parse_spec(text)
    s = spec.make_strategy().ask()
    store = open_store(str(tmp_path))
    store.begin(text, "t", None)
    store.commit({})
    store.log(Asked(0, s))
    store.log(Started(0, 0, 1.0))
    refs = {}
    for e in (1, 2):
        refs[e] = store.states.write(ModelState(0, e, {"w": np.full(4, float(e))}, {"curve": []}))
        store.log(StateSaved(refs[e]))
    store.commit({})
    store.close()
    for e in damaged:
        _damage_tensor(tmp_path / "experiment.weights" / refs[e].file)
    lines = []
    drive(text, open_store(str(tmp_path)), groups=2, lines=lines)
    rec = records(open_store(str(tmp_path)))[0]
    assert rec.status == DONE and rec.outcome.metrics["start_epoch"] == start
    assert rec.outcome.metrics["w0"] == (start + (3 - start))  # w counts the epochs trained
    log = "\n".join(lines)
    assert refs[2].file in log and "checksum mismatch" in log
    assert ("continued from epoch 1" in log) if start else ("starts from scratch" in log)


@pytest.mark.parametrize("runtime", [
    {"python_rng": [3, [1, 2], None]},                      # a Mersenne state of the wrong length
    {"numpy_rng": ["MT19937", [1, 2, 3], 0, 0, 0.0]},       # a numpy key of the wrong length
    {"numpy_rng": "forged"},                                 # not a state at all
    {"elapsed_seconds": "NaN"},
])
def test_a_forged_runtime_state_is_a_clear_checkpoint_error(tmp_path, runtime):
    text = fn_spec(2)
    drive(text, open_store(str(tmp_path)), groups=2)
    store = open_store(str(tmp_path))  # a writer that commits a forged runtime state
    loaded = store.load()
    store.begin(loaded.spec_text, loaded.version, loaded)
    store.commit(runtime)
    store.close()
    with pytest.raises(CheckpointError, match="runtime state cannot be restored"):
        drive(text, open_store(str(tmp_path)), groups=2)
