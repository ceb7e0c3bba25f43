"""What each strategy does beyond the shared contract."""
import numpy as np
import torch

from nasrun.api import best_trial, optimize
from nasrun.space import Categorical, Float, Integer, SearchSpace, builtin_params
from nasrun.strategies import WAIT, make_strategy
from nasrun.strategies.param_server import ParameterServer
from nasrun.trial import Outcome

torch.set_num_threads(1)
NB201 = SearchSpace(builtin_params("nb201", {}))


def done(s, v):
    return Outcome(s.trial_id, "done", {"valid_accuracy": float(v)})


def test_evolution_random_first_then_children_of_tournament_winner_oldest_leaves():
    ev = make_strategy("evolution", NB201, seed=0, population_size=4, sample_size=4)
    first = [ev.ask() for _ in range(4)]
    assert all(s.info["origin"] == "random" for s in first)
    for s, v in zip(first, [50, 90, 70, 60]):
        ev.tell(done(s, v))
    child = ev.ask()  # S = P: the parent is the best member
    assert child.info == {"origin": "mutation", "parent": first[1].trial_id}
    diff = [k for k in child.config if child.config[k] != first[1].config[k]]
    assert len(diff) == 1
    ev.tell(done(child, 10))  # worse than all, but the oldest (trial 0) leaves
    assert [m["trial_id"] for m in ev.population] == [1, 2, 3, child.trial_id]
    failed_random = make_strategy("evolution", NB201, seed=0, population_size=2)
    a = failed_random.ask()
    failed_random.ask()
    failed_random.tell(Outcome.failure(a.trial_id, "x"))
    assert failed_random.ask().info["origin"] == "random"  # a failed random one is replaced


def test_hyperband_brackets_wait_and_promote_the_best():
    hb = make_strategy("hyperband", NB201, seed=0, min_budget=1.0, max_budget=9.0, eta=3.0,
                       max_brackets=1)
    rung0 = [hb.ask() for _ in range(9)]
    assert {s.budget for s in rung0} == {1.0} and hb.ask() is WAIT
    for i, s in enumerate(rung0):
        if i == 8:
            hb.tell(Outcome.failure(s.trial_id, "oom"))
        else:
            hb.tell(done(s, i))
    rung1 = [hb.ask() for _ in range(3)]
    assert [s.resume_from for s in rung1] == [rung0[7].trial_id, rung0[6].trial_id,
                                              rung0[5].trial_id]
    assert all(s.budget == 3.0 and s.info["rung"] == 1 for s in rung1)
    assert hb.ask() is WAIT
    for s, v in zip(rung1, [1, 3, 2]):
        hb.tell(done(s, v))
    top = hb.ask()
    assert top.budget == 9.0 and top.resume_from == rung1[1].trial_id
    hb.tell(done(top, 5))
    nxt = [hb.ask() for _ in range(5)]  # bracket s=1: 5 configurations at budget 3
    assert {s.budget for s in nxt} == {3.0} and {s.info["bracket"] for s in nxt} == {1}


def test_asha_promotes_top_third_without_waiting():
    asha = make_strategy("asha", NB201, seed=0, min_budget=1.0, max_budget=9.0, eta=3.0)
    base = [asha.ask() for _ in range(3)]
    assert all(s.budget == 1.0 for s in base)
    asha.tell(done(base[0], 5))
    asha.tell(done(base[1], 9))
    assert asha.ask().budget == 1.0  # two told: top third is empty
    asha.tell(done(base[2], 1))
    promoted = asha.ask()
    assert promoted.resume_from == base[1].trial_id and promoted.budget == 3.0
    assert asha.ask().budget == 1.0  # promoted once only


def test_parameter_server_applies_fresh_and_rejects_stale_gradients():
    ps = ParameterServer({"w": np.zeros(2)}, lr=0.1, max_staleness=1)
    v0, p0 = ps.pull()
    assert ps.push({"w": np.array([1.0, -1.0])}, v0) == (True, 0)
    assert np.allclose(ps.params["w"], [-0.1, 0.1])  # Adam's first step is lr * sign
    assert ps.push({"w": np.ones(2)}, v0) == (True, 1)
    assert ps.push({"w": np.ones(2)}, v0) == (False, 2)
    assert ps.stats() == {"version": 2, "rejected": 1, "mean_staleness": 0.5, "max_staleness": 1}
    assert np.all(p0["w"] == 0)  # a pulled copy is not changed by later updates


def test_rl_waits_when_all_replicas_wait_and_emits_only_active_tokens():
    space = SearchSpace([Categorical("opt", {}, ("sgd", "adam")),
                         Float("momentum", {"opt": ("sgd",)}, 0.0, 0.9),
                         Integer("width", {}, 1, 1000, log=True)])
    rl = make_strategy("rl", space, seed=0, metric="valid_accuracy", replicas=2,
                       samples_per_replica=3, bins=4)
    asked = [rl.ask() for _ in range(6)]
    assert rl.ask() is WAIT
    assert [s.info["replica"] for s in asked] == [0, 0, 0, 1, 1, 1]
    for s in asked:
        assert space.contains(s.config)
        assert s.config["width"] in space["width"].grid(4)
        tokens = next(e[1] for e in rl.replicas[s.info["replica"]]["trials"] if e[0] == s.trial_id)
        assert len(tokens) == len(s.config)
    for s in asked[3:]:
        rl.tell(done(s, s.trial_id))
    assert rl.server.version == 1
    nxt = rl.ask()
    assert nxt.info["replica"] == 1 and nxt.info["version"] == 1
    for s in asked[:3]:
        rl.tell(done(s, 1.0))
    assert rl.server.version == 2  # replica 0's gradient was one version stale, still applied


def test_rl_learns_a_simple_preference():
    space = SearchSpace([Categorical(f"x{i}", {}, ("a", "b", "c", "d")) for i in range(3)])
    trials = optimize(lambda c, b: sum(v == "d" for v in c.values()), space, strategy="rl",
                      n_trials=240, metric="score", lr=0.05)
    first = np.mean([t.outcome.metrics["score"] for t in trials[:40]])
    last = np.mean([t.outcome.metrics["score"] for t in trials[-40:]])
    assert last > first + 0.75


def test_optimize_api_on_a_user_space_with_failures():
    space = {"lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
             "layers": {"type": "int", "low": 1, "high": 4}}

    def objective(config, budget):
        if config["layers"] == 4:
            raise RuntimeError("out of memory")
        return -abs(np.log10(config["lr"]) + 2) - config["layers"]

    for strategy in ("evolution", "asha"):
        trials = optimize(objective, space, strategy=strategy, n_trials=40, seed=1,
                          metric="loss", mode="max", objective={"fidelity": {"min": 1, "max": 9}})
        assert len(trials) == 40
        assert any(not t.outcome.ok and "out of memory" in t.outcome.error for t in trials)
        best = best_trial(trials, "loss", "max")
        assert best.outcome.metrics["loss"] == max(t.outcome.metrics["loss"]
                                                   for t in trials if t.outcome.ok)
