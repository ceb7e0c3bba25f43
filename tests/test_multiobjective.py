"""Several objectives and constraints: Pareto fronts, crowding, feasibility, the spec syntax, and
random search / regularized evolution driven by them."""
import math

import numpy as np
import pytest

from nasrun.api import optimize
from nasrun.errors import SpecError
from nasrun.multiobjective import (
    Constraint,
    Objective,
    best_by_rank_and_crowding,
    crowding_distance,
    dominates,
    feasible,
    non_dominated_sort,
    oriented,
    pareto_front,
    pareto_trials,
    scalarize,
)
from nasrun.space import SearchSpace
from nasrun.spec import parse_spec
from nasrun.strategies import make_strategy
from nasrun.trial import Outcome

ACC_MAX_PARAMS_MIN = [Objective("acc", "max"), Objective("params", "min")]


def test_dominance_and_fronts_on_hand_made_points():
    pts = [(1, 5), (2, 4), (3, 3), (2, 2), (1, 1), (3, 3), (0, 6), (2.5, 1)]
    assert dominates((2, 4), (2, 2)) and not dominates((2, 2), (2, 4))
    assert not dominates((3, 3), (3, 3))  # equal points do not dominate each other
    assert not dominates((1, 5), (2, 4))
    fronts = non_dominated_sort(pts)
    assert fronts[0] == [0, 1, 2, 5, 6]
    assert fronts[1] == [3, 7]
    assert fronts[2] == [4]
    assert sorted(i for f in fronts for i in f) == list(range(len(pts)))
    assert pareto_front(pts) == fronts[0]
    assert pareto_front([]) == []


def test_front_matches_brute_force_on_random_points():
    rng = np.random.default_rng(3)
    for _ in range(20):
        pts = [tuple(p) for p in rng.integers(0, 6, size=(30, 3)).tolist()]
        brute = [i for i, p in enumerate(pts) if not any(dominates(q, p) for q in pts)]
        assert pareto_front(pts) == brute
        fronts = non_dominated_sort(pts)
        for k, f in enumerate(fronts[1:], 1):  # each point is dominated by one of the front above
            for i in f:
                assert any(dominates(pts[j], pts[i]) for j in fronts[k - 1])


def test_crowding_distance():
    pts = [(0.0, 4.0), (1.0, 3.0), (3.0, 1.0), (4.0, 0.0)]
    d = crowding_distance(pts, [0, 1, 2, 3])
    assert d[0] == d[3] == math.inf
    # point 1: neighbours 0 and 2 -> (3-0)/4 + (4-1)/4 = 1.5; point 2: neighbours 1 and 3 -> same
    assert d[1] == pytest.approx(1.5) and d[2] == pytest.approx(1.5)
    pts2 = [(0.0, 10.0), (1.0, 9.0), (1.5, 8.5), (9.0, 1.0), (10.0, 0.0)]
    d2 = crowding_distance(pts2, [0, 1, 2, 3, 4])
    # 1 sits between 0 and 2 (crowded); 2 and 3 span the big gap
    assert (d2[1], d2[2], d2[3]) == pytest.approx((0.3, 1.6, 1.7))
    assert crowding_distance(pts2, [1, 2]) == {1: math.inf, 2: math.inf}


def test_best_by_rank_then_crowding():
    # a dominated point is never chosen, however isolated
    pts = [(0.0, 10.0), (1.0, 9.0), (1.2, 8.8), (9.0, 1.0), (10.0, 0.0), (-5.0, -5.0)]
    assert best_by_rank_and_crowding(pts) in (0, 4)  # boundary points have infinite distance
    inner = [(5.0, 5.0), (1.0, 9.0), (1.2, 8.8), (1.1, 8.0)]  # 3 is dominated by 2
    assert best_by_rank_and_crowding(inner) != 3


def test_oriented_feasible_scalarize():
    o = Outcome(0, "done", {"acc": 0.9, "params": 1000.0})
    assert oriented(o, ACC_MAX_PARAMS_MIN) == (0.9, -1000.0)
    assert oriented(Outcome(1, "done", {"acc": 0.9}), ACC_MAX_PARAMS_MIN) is None
    assert oriented(Outcome(1, "done", {"acc": 0.9, "params": float("nan")}), ACC_MAX_PARAMS_MIN) is None
    assert oriented(Outcome.failure(2, "x"), ACC_MAX_PARAMS_MIN) is None
    assert feasible(o, [Constraint("params", max=1000.0)])  # bounds are inclusive
    assert not feasible(o, [Constraint("params", max=999.0)])
    assert not feasible(o, [Constraint("acc", min=0.95)])
    assert not feasible(o, [Constraint("latency_ms", max=1.0)])  # missing metric: infeasible
    assert not feasible(Outcome.failure(3, "x"), [])
    assert scalarize((0.9, -1000.0), [1.0, 1e-4]) == pytest.approx(0.8)
    with pytest.raises(ValueError):
        Constraint("params")
    with pytest.raises(ValueError):
        Constraint("params", min=2, max=1)


def test_pareto_trials_excludes_infeasible():
    outs = [Outcome(0, "done", {"acc": 0.95, "params": 5e6}),  # best accuracy, but too big
            Outcome(1, "done", {"acc": 0.90, "params": 5e5}),
            Outcome(2, "done", {"acc": 0.80, "params": 1e5}),
            Outcome(3, "done", {"acc": 0.70, "params": 2e5}),  # dominated by 2
            Outcome.failure(4, "boom")]
    front = pareto_trials(outs, ACC_MAX_PARAMS_MIN, [Constraint("params", max=1e6)])
    assert [o.trial_id for o in front] == [1, 2]
    assert [o.trial_id for o in pareto_trials(outs, ACC_MAX_PARAMS_MIN)] == [0, 1, 2]


# -- strategies ---------------------------------------------------------------------------------
SPACE = SearchSpace.from_dict({f"x{i}": {"type": "int", "low": 0, "high": 15} for i in range(4)})


def toy(config, budget=None):
    """Two conflicting objectives, both maximised: f1 = sum of the genes, f2 = 60 - sum -
    3 * spread. For each sum the least spread wins, so the true Pareto set is: spread 0 when the
    sum is a multiple of 4, else spread 1 (226 of 65536 configurations). ``size`` is for a
    constraint."""
    x = np.array([config[f"x{i}"] for i in range(4)], dtype=float)
    return {"f1": float(x.sum()), "f2": float(60.0 - x.sum() - 3.0 * (x.max() - x.min())),
            "size": float(x.max())}


def on_true_front(config):
    x = [config[f"x{i}"] for i in range(4)]
    return max(x) - min(x) == (0 if sum(x) % 4 == 0 else 1)


def true_front_fraction(trials):
    return float(np.mean([on_true_front(t.suggestion.config) for t in trials]))


TWO = [Objective("f1", "max"), Objective("f2", "max")]


def test_evolution_keeps_parents_on_the_front_better_than_random():
    evo, rnd, par = [], [], []
    for seed in range(6):
        kw = dict(space=SPACE, n_trials=300, seed=seed, metric="f1", mode="max", objectives=TWO)
        e = optimize(toy, strategy="evolution", population_size=30, sample_size=8, **kw)
        r = optimize(toy, strategy="random", **kw)
        for run in (e, r):  # the reported Pareto set of each run is its non-dominated trials
            outs = [t.outcome for t in run]
            pts = [oriented(o, TWO) for o in outs]
            brute = [o.trial_id for o, p in zip(outs, pts) if not any(dominates(q, p) for q in pts)]
            assert [o.trial_id for o in pareto_trials(outs, TWO)] == brute
        evo.append(true_front_fraction(e[100:]))
        rnd.append(true_front_fraction(r[100:]))
        ids = {t.suggestion.trial_id: t for t in e}
        parents = [ids[t.suggestion.info["parent"]] for t in e[100:] if "parent" in t.suggestion.info]
        par.append(true_front_fraction(parents))
    print("on the true front: evolution", evo, "parents", par, "random", rnd)
    assert np.mean(rnd) < 0.02  # 226/65536 = 0.34% expected
    assert min(evo) > 5 * max(rnd) and np.mean(evo) > 10 * np.mean(rnd)
    assert np.mean(par) > np.mean(evo)  # Pareto tournaments pick front members as parents


def test_infeasible_trials_are_never_parents_nor_scored():
    cons = [Constraint("size", max=11.0)]
    trials = optimize(toy, SPACE, strategy="evolution", n_trials=200, seed=1, metric="f1", mode="max",
                      objectives=TWO, constraints=cons, population_size=20, sample_size=5)
    ids = {t.suggestion.trial_id: t for t in trials}
    parents = {t.suggestion.info["parent"] for t in trials if "parent" in t.suggestion.info}
    assert len(parents) > 10
    assert sum(t.outcome.metrics["size"] > 11.0 for t in trials) > 20  # infeasible ones exist
    for p in parents:
        assert ids[p].outcome.metrics["size"] <= 11.0
    strat = make_strategy("random", SPACE, metric="f1", mode="max", objectives=TWO, constraints=cons)
    assert strat.score(Outcome(0, "done", {"f1": 99.0, "f2": 0.0, "size": 12.0})) is None
    assert strat.score(Outcome(0, "done", {"f1": 9.0, "f2": 0.0, "size": 11.0})) == 9.0


def test_scalarized_objectives_work_with_any_strategy():
    objs = [Objective("f1", "max", 1.0), Objective("f2", "max", 2.0)]
    s = make_strategy("hyperband", SPACE, metric="f1", mode="max", objectives=objs, scalarize=True,
                      min_budget=1.0, max_budget=9.0)
    assert s.score(Outcome(0, "done", {"f1": 1.0, "f2": 3.0})) == pytest.approx(7.0)
    with pytest.raises(ValueError, match="optimises one objective"):
        make_strategy("hyperband", SPACE, metric="f1", mode="max", objectives=objs,
                      min_budget=1.0, max_budget=9.0)


# -- spec ---------------------------------------------------------------------------------------
BASE = """
experiment: {name: mo}
space: {builtin: chain, options: {max_layers: 2, widths: [8, 16]}}
strategy: {name: STRAT}
objective:
OBJ
"""


def spec(obj, strat="evolution"):
    return BASE.replace("STRAT", strat).replace("OBJ", obj)


def test_spec_two_objectives_and_a_constraint():
    s = parse_spec(spec("  objectives: [{metric: valid_accuracy, mode: max}, {metric: params, mode: min}]\n"
                        "  constraints: [{metric: params, max: 1.0e6}, {metric: macs, min: 10, max: 1e+9}]"))
    assert (s.objective.metric, s.objective.mode) == ("valid_accuracy", "max")
    objs, cons = s.objective_terms()
    assert [(o.metric, o.mode) for o in objs] == [("valid_accuracy", "max"), ("params", "min")]
    assert cons == [Constraint("params", None, 1e6), Constraint("macs", 10.0, 1e9)]
    strat = s.make_strategy()
    assert strat.pareto and strat.constraints == cons
    # first objective is the main metric: metric/mode follow it
    s2 = parse_spec(spec("  objectives: [{metric: params, mode: min}, {metric: valid_accuracy}]"))
    assert (s2.objective.metric, s2.objective.mode) == ("params", "min")
    # the single-objective form is unchanged
    s3 = parse_spec(spec("  metric: valid_loss\n  mode: min"))
    assert (s3.objective.metric, s3.objective.mode, s3.objective.objectives) == ("valid_loss", "min", [])


@pytest.mark.parametrize("obj,strat,path,msg", [
    ("  objectives: [{metric: a}, {metric: b}]", "rl", "objective.objectives", "optimises one objective"),
    ("  objectives: [{metric: a}, {mode: min}]", "random", "objective.objectives[1].metric", "required key"),
    ("  objectives: [{metric: a, mode: up}]", "random", "objective.objectives[0].mode", "expected one of"),
    ("  objectives: [{metric: a, weight: 0}]", "random", "objective.objectives[0].weight", "> 0"),
    ("  objectives: [{metric: a}, {metric: a}]", "random", "objective.objectives[1].metric", "named twice"),
    ("  metric: b\n  objectives: [{metric: a}, {metric: c}]", "random", "objective.metric", "differs"),
    ("  objectives: {metric: a}", "random", "objective.objectives", "expected a list"),
    ("  constraints: [{metric: params}]", "random", "objective.constraints[0]", "'min' and/or 'max'"),
    ("  constraints: [{metric: params, max: big}]", "random", "objective.constraints[0].max",
     "finite number"),
    ("  constraints: [{metric: params, min: 3, max: 1}]", "random", "objective.constraints[0].min",
     "exceeds"),
    ("  constraints: [{metric: params, maximum: 1}]", "random", "objective.constraints[0].maximum",
     "did you mean 'max'"),
    ("  objectives: [{metric: a}]\n  scalarize: true", "random", "objective.scalarize", "at least two"),
])
def test_spec_errors_name_the_key_path(obj, strat, path, msg):
    with pytest.raises(SpecError) as e:
        parse_spec(spec(obj, strat), "mo.yaml")
    assert e.value.path == path, str(e.value)
    assert msg in str(e.value) and "mo.yaml" in str(e.value)


def test_spec_scalarized_objectives_accepted_by_single_objective_strategy():
    s = parse_spec(spec("  objectives: [{metric: valid_accuracy},"
                        " {metric: params, mode: min, weight: 1.0e-6}]\n"
                        "  scalarize: true", "asha"))
    st = s.make_strategy()
    assert st.score(Outcome(0, "done", {"valid_accuracy": 0.9, "params": 1e5})) == pytest.approx(0.8)
