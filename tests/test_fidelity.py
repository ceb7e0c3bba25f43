"""Multi-fidelity budgets: rungs on the fidelities an objective declares, the spec's
``objective.fidelity``, what ``nasrun validate`` shows, hyperband's utilization with several
groups, and the simulator's accounting of training work."""
import os

import pytest
import torch
from click.testing import CliRunner

from nasrun.cli import main
from nasrun.errors import SpecError
from nasrun.simulate import nb201_spec, simulate_run
from nasrun.spec import parse_spec
from nasrun.strategies import WAIT, make_strategy
from nasrun.strategies.fidelity import Fidelities, promotion_steps, rung_budgets
from nasrun.trial import Outcome

torch.set_num_threads(1)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.join(ROOT, "tests")
NB201 = os.path.join(os.path.dirname(ROOT), "shared", "benchmarks", "nb201")
MULTI_FIDELITY = ("hyperband", "asha", "bohb")


def function_spec(strategy="asha", objective="", options="{}"):
    return f"""
experiment: {{name: fid, seed: 0}}
space: {{builtin: chain, options: {{kind: mlp, max_layers: 2}}}}
strategy: {{name: {strategy}, options: {options}}}
objective:
  type: function
  function: "objectives_for_tests:score"
  python_path: ["{HERE}"]
{objective}
budget: {{max_trials: 10}}
"""


def train_spec(strategy, min_epochs, epochs, options="{}"):
    return f"""
experiment: {{name: tr}}
space: {{builtin: chain}}
strategy: {{name: {strategy}, options: {options}}}
objective: {{type: train, min_epochs: {min_epochs}, epochs: {epochs}}}
"""


# -- rungs --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", MULTI_FIDELITY)
def test_table_rungs_are_12_and_200(name):
    """min 12 / max 200 / eta 3 used to give 22.2, 66.7, 200: both lower rungs read the 12-epoch
    column. Now the rungs start at 12 and land on the table's two fidelities."""
    s = nb201_spec(name, objective_path=NB201).make_strategy(dedupe=False)
    assert s.budgets == [12.0, 200.0]
    first = s.ask()
    assert first.budget == 12.0


def test_hyperband_brackets_on_the_table():
    hb = nb201_spec("hyperband", objective_path=NB201).make_strategy(dedupe=False)
    assert hb.ladder == [12.0, 12.0, 200.0]  # min 12 x 3 = 36 lands on 12
    assert hb.schedule() == [[(9, 12.0), (1, 200.0)], [(5, 12.0), (1, 200.0)], [(3, 200.0)]]


@pytest.mark.parametrize("min_epochs,epochs,eta,rungs", [
    (1, 100, 3.0, [1.0, 3.0, 9.0, 27.0, 100.0]),
    (1, 20, 2.5, [1.0, 3.0, 6.0, 20.0]),  # 2.5 -> 3 and 6.25 -> 6: the nearer on a log scale
    (3, 5, 3.0, [5.0]),  # less than one factor of eta: no halving fits, every trial trains 5
    (4, 4, 3.0, [4.0]),
])
@pytest.mark.parametrize("name", ["asha", "hyperband"])
def test_train_rungs_are_integer_epochs_from_min_epochs(name, min_epochs, epochs, eta, rungs):
    spec = parse_spec(train_spec(name, min_epochs, epochs, f"{{eta: {eta}}}"))
    s = spec.make_strategy()
    assert s.budgets == rungs
    assert all(b == int(b) for b in s.budgets) and s.budgets[-1] == epochs
    assert s.budgets[0] == (min_epochs if epochs >= eta * min_epochs else epochs)


def test_snap_is_nearest_on_a_log_scale_lower_on_a_tie():
    table = Fidelities.of(12, 200, (200, 12))
    assert table.values == (12.0, 200.0)
    assert [table.snap(b) for b in (1, 12, 36, 48, 49, 108, 500)] == [12, 12, 12, 12, 200, 200, 200]
    assert Fidelities.of(2, 8, (2, 8)).snap(4) == 2  # sqrt(2 * 8): a tie
    ints = Fidelities.of(1, 10, integer=True)
    assert [ints.snap(x) for x in (1.4, 1.5, 2.44, 2.45, 9.9, 30)] == [1, 2, 2, 3, 10, 10]
    assert Fidelities.of(1, 10).snap(2.5) == 2.5
    assert rung_budgets(1, 64, 3, Fidelities.of(1, 64, (1, 4, 16, 64))) == [1, 4, 16, 64]
    assert rung_budgets(1, 81, 3) == [1, 3, 9, 27, 81]
    assert promotion_steps(1, 81, 3) == [1, 1, 1, 1]
    assert promotion_steps(12, 200, 3, table) == [2]  # 12, 12, 200: one rung skipped


def test_function_fidelity_reaches_the_strategy_and_the_function():
    spec = parse_spec(function_spec("hyperband", "  fidelity: {values: [1, 4, 16, 64]}"))
    assert spec.strategy_options()["min_budget"] == 1.0 and spec.strategy_options()["max_budget"] == 64.0
    s = spec.make_strategy()
    assert s.budgets == [1.0, 4.0, 16.0, 64.0]
    spec = parse_spec(function_spec("asha", "  fidelity: {min: 0.5, max: 8}", "{eta: 2}"))
    assert spec.make_strategy().budgets == [0.5, 1.0, 2.0, 4.0, 8.0]
    spec = parse_spec(function_spec("random", "  fidelity: {min: 1, max: 30, integer: true}"))
    from nasrun.runtime.driver import full_epochs
    assert full_epochs(spec) == 30.0  # a trial without a budget trains the full fidelity


def done(s, v):
    return Outcome(s.trial_id, "done", {"valid_accuracy": float(v)})


def test_a_skipped_rung_is_promoted_without_training():
    """On the table the ladder 12, 36, 200 is 12, 12, 200: the 36-epoch rung would re-rank the
    same 12-epoch values, so the best 1/9 (not 1/3) of rung 12 go straight to 200."""
    asha = nb201_spec("asha", objective_path=NB201).make_strategy(dedupe=False)
    base = [asha.ask() for _ in range(9)]
    for i, s in enumerate(base[:8]):
        asha.tell(done(s, i))
    assert asha.ask().budget == 12.0  # 8 told: floor(8/9) = 0 promotions
    asha.tell(done(base[8], 100))
    top = asha.ask()
    assert (top.budget, top.resume_from) == (200.0, base[8].trial_id)
    hb = nb201_spec("hyperband", {"max_brackets": 1}, objective_path=NB201).make_strategy(dedupe=False)
    rung0 = [hb.ask() for _ in range(9)]
    assert {s.budget for s in rung0} == {12.0} and hb.ask() is WAIT
    for i, s in enumerate(rung0):
        hb.tell(done(s, [3, 1, 4, 1, 5, 9, 2, 6, 5][i]))
    top = hb.ask()
    assert (top.budget, top.resume_from) == (200.0, rung0[5].trial_id) and hb.ask() is WAIT
    hb.tell(done(top, 90))
    assert [hb.ask().budget for _ in range(5)] == [12.0] * 5  # the next bracket: 5 x 12 -> 1 x 200


@pytest.mark.parametrize("name", MULTI_FIDELITY)
def test_skipped_rungs_resume_exactly(name):
    """The shared suite's exact-resume check with the table's fidelities (a skipped rung)."""
    from strategy_harness import Driver, build, json_roundtrip
    space = nb201_spec("random").make_space()
    table = dict(min_budget=12.0, max_budget=200.0, fidelities=Fidelities.of(12, 200, (12, 200)))
    original = Driver(build(name, space, seed=7, **table), seed=2, outstanding=6)
    first = original.run_asks(60)
    assert {s.budget for s in first} == {12.0, 200.0} and original.pending
    restored_strategy = build(name, space, seed=999, **table)
    restored_strategy.load_state_dict(json_roundtrip(original.strategy.state_dict()))
    restored = original.clone_with(restored_strategy)
    a = [s.to_dict() for s in original.run_asks(40)]
    assert a == [s.to_dict() for s in restored.run_asks(40)] and len(a) == 40


# -- the spec ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", MULTI_FIDELITY)
def test_multi_fidelity_on_a_function_without_fidelity_is_refused(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    f = tmp_path / "spec.yaml"
    f.write_text(function_spec(name, "  min_epochs: 1\n  epochs: 9"))
    r = CliRunner().invoke(main, ["validate", str(f)])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert f"{f}:" in r.output and "objective.fidelity" in r.output
    assert f"strategy '{name}' gives each trial a budget" in r.output
    assert "expected 'fidelity: {min: LOW, max: HIGH}'" in r.output
    assert "min_epochs and epochs are the train objective's epochs" in r.output
    f.write_text(function_spec("random", "  min_epochs: 1\n  epochs: 9"))  # no budgets: fine
    assert CliRunner().invoke(main, ["validate", str(f)]).exit_code == 0


@pytest.mark.parametrize("text,path,message", [
    (function_spec(objective="  fidelity: {min: 4, max: 2}"), "objective.fidelity.min", "exceeds max"),
    (function_spec(objective="  fidelity: {min: 0, max: 2}"), "objective.fidelity.min", "> 0.0"),
    (function_spec(objective="  fidelity: {max: 2}"), "objective.fidelity", "expected 'min' and 'max'"),
    (function_spec(objective="  fidelity: {values: [1, -2]}"), "objective.fidelity.values[1]", "> 0"),
    (function_spec(objective="  fidelity: {values: [1, 2, 4], max: 3}"), "objective.fidelity.max",
     "not the highest of 'values' (4)"),
    (function_spec(objective="  fidelity: {values: [1, 2], integer: true}"), "objective.fidelity.integer",
     "give one or the other"),
    (function_spec(objective="  fidelity: {min: 1.2, max: 1.8, integer: true}"),
     "objective.fidelity.integer", "no integer lies between"),
    (function_spec(objective="  fidelity: {min: 1, max: 9}", options="{max_budget: 27}"),
     "strategy.options.max_budget", "outside the fidelities the objective declares (any value from 1 to 9)"),
    (train_spec("asha", 2, 9).replace("epochs: 9}", "epochs: 9, fidelity: {min: 1, max: 9}}"),
     "objective.fidelity", "a train objective's are every integer epoch from min_epochs (2) to epochs (9)"),
    (train_spec("asha", 2, 9, "{min_budget: 1}"), "strategy.options.min_budget",
     "expected a budget from 2 to 9"),
])
def test_fidelity_errors_name_the_key_path(text, path, message):
    with pytest.raises(SpecError) as e:
        parse_spec(text, "f.yaml")
    assert e.value.path == path and message in str(e.value) and "f.yaml" in str(e.value), str(e.value)


def test_validate_prints_the_rungs_and_brackets(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    f = tmp_path / "nb.yaml"
    f.write_text(f"experiment: {{name: nb}}\nspace: {{builtin: nb201}}\nstrategy: {{name: hyperband}}\n"
                 f"objective: {{type: table, path: {NB201}}}\n")
    r = CliRunner().invoke(main, ["validate", str(f)])
    assert r.exit_code == 0, r.output
    assert "  rungs       12, 200 (the best 1/9 go up a rung; the objective's fidelities: 12, 200)" \
        in r.output
    assert "  brackets    9 x 12 -> 1 x 200; 5 x 12 -> 1 x 200; 3 x 200" in r.output
    r = CliRunner().invoke(main, ["validate", "configs/joint-nas-hpo.yaml"])  # asha, train 1..9 epochs
    assert r.exit_code == 0, r.output
    assert "  rungs       1, 3, 9 (the best 1/3 go up a rung; the objective's fidelities: every integer " \
           "from 1 to 9)" in r.output and "brackets" not in r.output
    r = CliRunner().invoke(main, ["validate", "configs/default.yaml"])  # evolution: no rungs
    assert r.exit_code == 0 and "rungs" not in r.output


# -- hyperband with several groups, and training work ----------------------------------------
def test_hyperband_keeps_8_simulated_groups_busy():
    """Default max_brackets (no limit): an idle group opens the next bracket. One bracket at a
    time (the former default) leaves most of 8 groups idle on the table's two rungs."""
    def util(**options):
        r = simulate_run(nb201_spec("hyperband", options, seed=0, objective_path=NB201), 8,
                         max_epochs=20000, store="memory", charge_cpu=False)
        return r.within_epochs(15000)["utilization"]  # before the drain at the end of the budget
    assert util() >= 0.9
    assert util(max_brackets=1) < 0.5


def test_hyperband_opens_brackets_only_for_idle_workers():
    hb = make_strategy("hyperband", nb201_spec("random").make_space(), min_budget=1.0, max_budget=9.0)
    asked = [hb.ask() for _ in range(30)]  # 30 workers asking, nothing told yet
    brackets = {s.info["bracket"] for s in asked}
    assert len(brackets) <= len(asked) and hb.state_dict()["strategy"]["iteration"] == len(brackets)
    for s in asked:
        hb.tell(Outcome(s.trial_id, "done", {"valid_accuracy": float(s.trial_id)}))
    assert hb.ask().resume_from is not None  # a finished rung promotes before a new bracket opens


def test_work_counts_promotions_by_their_extra_epochs():
    spec = nb201_spec("asha", seed=3, objective_path=NB201)
    r = simulate_run(spec, 1, max_epochs=6000, store="memory", charge_cpu=False)
    by_id = {t.trial_id: t for t in r.trials}
    promoted = [t for t in r.trials if t.suggestion.resume_from is not None]
    assert promoted
    for t, w in zip(r.trials, r.work):
        rf = t.suggestion.resume_from
        assert w == t.suggestion.budget - (0.0 if rf is None else by_id[rf].suggestion.budget)
    cut = r.within_epochs(4000.0)
    done = [w for t, w in zip(r.trials, r.work) if t.end <= cut["time"]]
    assert cut["trials"] == len(done) and sum(done) <= 4000.0 < sum(r.work[:len(done) + 1])
    assert r.epochs_trained(cut["time"]) == pytest.approx(4000.0)
    pick = by_id[cut["pick"]]
    assert pick.suggestion.budget == 200.0 and cut["metric"] == pick.outcome.metrics["valid_accuracy"]
    assert cut["utilization"] == 1.0


def test_random_search_work_cut_is_whole_evaluations():
    """E full evaluations' worth of epochs is exactly E random trials on one group; on 8 groups
    the trials in flight count their part, so fewer have finished."""
    cuts = [simulate_run(nb201_spec("random", seed=1, objective_path=NB201), g, max_epochs=3000,
                         store="memory", charge_cpu=False).within_epochs(2000.0) for g in (1, 8)]
    assert cuts[0]["trials"] == 10 and cuts[1]["trials"] < 10
    with pytest.raises(ValueError, match="fewer than"):
        simulate_run(nb201_spec("random", seed=1, objective_path=NB201), 1, max_trials=2,
                     store="memory", charge_cpu=False).within_epochs(1000.0)


def test_listed_fidelities_set_the_full_budget():
    from nasrun.runtime.driver import full_epochs
    from nasrun.spec import dump_spec
    spec = parse_spec(function_spec("random", "  fidelity: {values: [2, 6, 18]}"))
    assert (spec.objective.fidelity.min, spec.objective.fidelity.max) == (2.0, 18.0)
    assert full_epochs(spec) == 18.0
    assert parse_spec(dump_spec(spec)).objective.fidelity == spec.objective.fidelity
