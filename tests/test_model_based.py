"""Behaviour of the model-based strategies (gp, smac, tpe) and local search beyond the shared suite."""
import math
import os

import numpy as np
import pytest
from scipy.stats import spearmanr
from strategy_harness import spaces

from nasrun.space import Categorical, Float, SearchSpace
from nasrun.strategies import gaussian_process, make_strategy
from nasrun.strategies.acquisition import expected_improvement, maximize, neighbours
from nasrun.strategies.gaussian_process import (
    GP,
    default_theta,
    differences,
    fit_hyperparameters,
    neg_log_likelihood,
)
from nasrun.strategies.kde_model import KDE, categories, config_key, propose
from nasrun.strategies.model_based import gaussian_ranks, power_transform
from nasrun.trial import Outcome

SPACES = spaces()
MODEL_BASED = ["gp", "smac", "tpe"]


def bench_function(name):
    """(space, function to minimise, its minimum) from bench/_functions.py: the test functions
    of bench/strategies.py, one definition for the bench and the tests."""
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench", "_functions.py")
    spec = importlib.util.spec_from_file_location("bench_functions", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)()


def run(strategy, f, n):
    """Sequential ask/tell of ``f`` (maximised); the best value after each evaluation."""
    best, out = -math.inf, []
    for _ in range(n):
        s = strategy.ask()
        v = f(s.config)
        best = max(best, v)
        out.append(best)
        strategy.tell(Outcome(s.trial_id, "done", {"score": v}))
    return out


def test_neighbours_of_an_nb201_cell_are_the_24_single_edge_edits():
    space = SPACES["nb201"]
    rng = np.random.default_rng(0)
    config = space.sample(rng)
    found = neighbours(space, config, rng)
    assert len(found) == 6 * 4 == len({config_key(c) for c in found})
    for c in found:
        assert space.problems(c) == []
        assert sum(c[k] != config[k] for k in config) == 1


def test_neighbours_repair_conditions_and_step_numbers():
    space = SPACES["hpo"]
    rng = np.random.default_rng(1)
    config = space.complete({"optimizer": "sgd", "layers": 2}, rng)
    found = neighbours(space, config, rng)
    assert all(space.problems(c) == [] for c in found)
    adam = [c for c in found if c["optimizer"] == "adam"]
    assert len(adam) == 1 and "beta2" in adam[0] and "momentum" not in adam[0]
    assert {c["layers"] for c in found if c["layers"] != 2} == {1, 3, 4, 5}  # small int: every value
    assert any("activation" in c for c in found)  # layers 3..5 activates a child


def test_local_search_moves_on_first_improvement_and_restarts_at_a_local_optimum():
    space = SearchSpace([Categorical("a", {}, (0, 1, 2, 3)), Categorical("b", {}, (0, 1, 2, 3))])
    value = {(a, b): float(a + b) for a in range(4) for b in range(4)}
    value[(0, 0)] = 10.0  # an isolated peak: every neighbour of it is worse
    ls = make_strategy("local_search", space, seed=0, metric="score", mode="max", n_initial=1)
    by_id = {}
    for _ in range(16):
        s = ls.ask()
        by_id[s.trial_id] = s
        before = None if ls.centre is None else dict(ls.centre)
        if s.info["origin"] == "neighbour":  # one edit away from the centre of the time
            centre = by_id[s.info["centre"]].config
            assert sum(centre[k] != s.config[k] for k in centre) == 1
        v = value[(s.config["a"], s.config["b"])]
        ls.tell(Outcome(s.trial_id, "done", {"score": v}))
        if before is not None and v > before["score"]:
            assert ls.centre["trial_id"] == s.trial_id  # the first improvement moves at once
    assert len({(s.config["a"], s.config["b"]) for s in by_id.values()}) == 16  # no repeats
    assert ls.restarts >= 1  # (0, 0) and the top corner are local optima


def test_local_search_walks_from_the_best_of_its_random_start():
    space = SearchSpace([Categorical(f"x{i}", {}, (0, 1, 2, 3)) for i in range(4)])
    ls = make_strategy("local_search", space, seed=2, metric="score", mode="max", n_initial=6)
    start = [ls.ask() for _ in range(6)]
    assert all(s.info["origin"] == "random" for s in start)
    for s in start:
        ls.tell(Outcome(s.trial_id, "done", {"score": float(sum(s.config.values()))}))
    best = max(start, key=lambda s: sum(s.config.values()))
    walk = ls.ask()
    assert walk.info == {"origin": "neighbour", "centre": best.trial_id}


def test_local_search_finds_the_onemax_optimum_of_a_discrete_space():
    space = SearchSpace([Categorical(f"x{i}", {}, (0, 1, 2, 3)) for i in range(6)])
    ls = make_strategy("local_search", space, seed=3, metric="score", mode="max")
    best = run(ls, lambda c: float(sum(c.values())), 6 * 3 * 6)
    assert best[-1] == 18.0


@pytest.mark.parametrize("name", MODEL_BASED + ["local_search"])
def test_pending_configurations_are_never_proposed_again(name):
    space = SPACES["nb201"]
    strategy = make_strategy(name, space, seed=0, metric="score", mode="max", **(
        {"n_initial": 5} if name != "local_search" else {}))
    first = [strategy.ask() for _ in range(8)]
    for s in first:
        strategy.tell(Outcome(s.trial_id, "done", {"score": float(s.trial_id)}))
    asked = [strategy.ask() for _ in range(30)]  # all outstanding at once
    keys = [config_key(s.config) for s in first + asked]
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize("name", MODEL_BASED)
def test_initial_design_counts_asks_so_idle_groups_get_model_configurations(name):
    """n_initial asks are random; the next one comes from the model once two results are in,
    however many of the initial configurations are still running (8 groups, n_initial 5)."""
    space = SPACES["nb201"]
    extra = {"min_points_in_model": 1} if name == "tpe" else {}  # else tpe's KDEs need d + 1
    strategy = make_strategy(name, space, seed=0, metric="score", mode="max", n_initial=5,
                             random_fraction=0.0, **extra)
    first = [strategy.ask() for _ in range(8)]
    assert [s.info["origin"] for s in first] == ["random"] * 8  # fewer than two observations
    strategy.tell(Outcome(first[0].trial_id, "done", {"score": 1.0}))
    assert strategy.ask().info["origin"] == "random"
    strategy.tell(Outcome(first[1].trial_id, "done", {"score": 2.0}))
    assert strategy.ask().info["origin"] == "model"  # 2 results after 9 asks: 7 still running


def test_gp_believes_its_own_mean_at_pending_trials():
    """Kriging believer: a pending trial counts as an observation of the posterior mean, so the
    mean stays where the data put it (a constant liar would drag it down around the pending
    trial) and only the uncertainty at the pending trial collapses."""
    space = SPACES["nb201"]
    gp = make_strategy("gp", space, seed=0, metric="score", mode="max", n_initial=5)
    rng = np.random.default_rng(0)
    for _ in range(12):
        s = gp.ask()
        x = np.nan_to_num(space.to_vector(s.config))
        gp.tell(Outcome(s.trial_id, "done", {"score": float(x[0] + 2 * x[1] - x[2])}))
    pending = [gp.ask() for _ in range(3)]
    believer, best = gp.surrogate()
    X, y = gp.window()
    z = gp.transform(y)
    plain = GP(X, z, gp.cats, gp.theta)
    Q = np.array([space.to_vector(space.sample(rng)) for _ in range(50)]
                 + [space.to_vector(s.config) for s in pending])
    mean_b, std_b = believer.predict(Q)
    mean_p, std_p = plain.predict(Q)
    assert np.allclose(mean_b, mean_p, atol=1e-6)
    assert np.all(std_b <= std_p + 1e-9)
    noise = float(np.exp(gp.theta[-1]))
    assert np.all(std_b[-3:] < np.sqrt(noise) + 1e-3) and np.all(std_p[-3:] > 2 * np.sqrt(noise))
    assert best == pytest.approx(float(np.max(z)))


def test_window_keeps_the_best_and_the_latest():
    space = SPACES["nb201"]
    tpe = make_strategy("tpe", space, seed=0, metric="score", mode="max", window=10)
    rng = np.random.default_rng(0)
    for i in range(40):
        tpe.X.append(space.to_vector(space.sample(rng)))
        tpe.y.append(float((i * 7) % 40))
    X, y = tpe.window()
    assert len(X) == len(y) == 10
    assert set(y[:]) >= {39.0, 38.0, 37.0, 36.0, 35.0}  # the best 5
    latest = [float((i * 7) % 40) for i in range(35, 40)]
    assert all(v in list(y) for v in latest)


def test_gp_likelihood_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    X = rng.random((15, 4))
    X[rng.random((15, 4)) < 0.2] = np.nan
    cats = np.array([3, 0, 5, 0])
    z = rng.normal(size=15)
    D2 = differences(X, X, cats) ** 2
    theta = np.array([0.1, -0.3, 0.4, 0.0, 0.2, np.log(0.7), np.log(1e-2)])
    _, grad = neg_log_likelihood(theta, D2, z)
    eps = 1e-6
    numeric = [(neg_log_likelihood(theta + eps * e, D2, z)[0] - neg_log_likelihood(theta - eps * e, D2, z)[0])
               / (2 * eps) for e in np.eye(len(theta))]
    assert np.allclose(grad, numeric, rtol=1e-4, atol=1e-5)


def test_gp_kernel_shortcut_for_categoricals_gives_the_same_matrix():
    """The additive terms of categorical parameters as one matrix product equal the Matérn per
    entry, on a space mixing categoricals, numbers and inactive parameters."""
    rng = np.random.default_rng(0)
    X, Q = rng.random((15, 4)), rng.random((40, 4))
    X[rng.random((15, 4)) < 0.2] = np.nan
    Q[rng.random((40, 4)) < 0.2] = np.nan
    cats = np.array([3, 0, 5, 0])
    D2 = differences(Q, X, cats) ** 2
    theta = np.array([0.1, -0.3, 0.4, -1.0, 0.2, np.log(0.7), np.log(1e-2)])
    Kp, _, Ka, _ = gaussian_process._parts(D2, theta)
    for binary in (cats > 0, np.array([True, False, False, False])):  # all categoricals, or one
        assert np.allclose(gaussian_process._kernel(D2, theta, binary), Kp + Ka, rtol=1e-12, atol=1e-14)


def test_gp_categorical_kernel_sees_choices_not_their_codes():
    """Choices 0 and 2 are as far apart as 0 and 1; a fitted GP interpolates its data."""
    cats = np.array([3])
    X = np.array([[1 / 6], [3 / 6], [5 / 6]])
    d = differences(X, X, cats)[..., 0]
    assert d[0, 1] == d[0, 2] == 1.0 and d[0, 0] == 0.0
    z = np.array([-1.0, 1.0, 0.0])
    theta = fit_hyperparameters(X, z, cats, default_theta(1))
    mean, std = GP(X, z, cats, theta).predict(X)
    assert np.allclose(mean, z, atol=0.05) and np.all(std < 0.3)


def _cell(n_edges=6, n_ops=5):
    return SearchSpace([Categorical(f"e{i}", {}, tuple(range(n_ops))) for i in range(n_edges)])


def _fit(space, f, n, seed):
    """A GP fitted to ``n`` random configurations of ``space`` scored by ``f``, and the data."""
    rng = np.random.default_rng(seed)
    configs = [space.sample(rng) for _ in range(n)]
    X = np.array([space.to_vector(c) for c in configs])
    z = np.array([f(c) for c in configs])
    z = (z - z.mean()) / z.std()
    cats = categories(space)
    theta = fit_hyperparameters(X, z, cats, default_theta(len(space)))
    return GP(X, z, cats, theta), theta


def test_gp_additive_part_carries_what_one_choice_did_to_unseen_configurations(monkeypatch):
    """A cell whose score is a sum of one effect per edge (NAS-Bench-201-like): from 40
    configurations, the GP with the additive part ranks 200 unseen ones almost exactly; the same
    GP with the additive part held at its lower bound (the joint Matérn alone) ranks them much
    worse, because every unseen cell is far from every seen one in the joint distance."""
    space = _cell()
    effects = np.random.default_rng(1).normal(size=(6, 5))

    def f(c):
        return float(sum(effects[i, c[f"e{i}"]] for i in range(6)))
    rng = np.random.default_rng(2)
    unseen = [space.sample(rng) for _ in range(200)]
    Q = np.array([space.to_vector(c) for c in unseen])
    truth = np.array([f(c) for c in unseen])
    gp, theta = _fit(space, f, 40, seed=3)
    with_additive = spearmanr(gp.predict(Q)[0], truth).statistic
    assert np.exp(theta[len(space) + 1]) > np.exp(theta[len(space)])  # mostly additive
    low = gaussian_process.LOG_BOUNDS_ADDITIVE[0]
    monkeypatch.setattr(gaussian_process, "LOG_BOUNDS_ADDITIVE", (low, low))
    joint, _ = _fit(space, f, 40, seed=3)
    joint_only = spearmanr(joint.predict(Q)[0], truth).statistic
    assert with_additive > 0.95 and joint_only < 0.8, (with_additive, joint_only)


def test_gp_drops_the_additive_part_on_a_pure_interaction():
    """A score that only the combination of two parameters decides (their parity): no single
    parameter says anything, and the fitted additive weight is a small share of the joint one."""
    space = _cell(n_edges=2, n_ops=4)

    def f(c):
        return float((c["e0"] + c["e1"]) % 2)
    _, theta = _fit(space, f, 16, seed=0)
    s_p, s_a = np.exp(theta[2]), np.exp(theta[3])
    assert s_a < 0.05 * s_p, (s_p, s_a)


def test_gp_resumes_a_state_written_before_the_additive_part(monkeypatch):
    """A snapshot from before the additive part holds d + 2 hyperparameters: it loads as the same
    kernel (additive part at its lower bound, so the same predictions) and asks go on. The old
    snapshot is made by running with the additive part held at its bound (the old kernel's fit)
    and leaving its weight out."""
    space = SPACES["nb201"]
    low = gaussian_process.LOG_BOUNDS_ADDITIVE[0]
    monkeypatch.setattr(gaussian_process, "LOG_BOUNDS_ADDITIVE", (low, low))
    gp = make_strategy("gp", space, seed=0, metric="score", mode="max", n_initial=5)
    for _ in range(12):
        s = gp.ask()
        x = np.nan_to_num(space.to_vector(s.config))
        gp.tell(Outcome(s.trial_id, "done", {"score": float(x[0] + 2 * x[1] - x[2])}))
    gp.surrogate()
    monkeypatch.undo()
    d = len(space)
    state = gp.state_dict()
    old_theta = np.delete(np.asarray(state["strategy"]["model"]["theta"]), d + 1)
    state["strategy"]["model"]["theta"] = old_theta.tolist()
    resumed = make_strategy("gp", space, seed=0, metric="score", mode="max", n_initial=5)
    resumed.load_state_dict(state)
    assert len(resumed.theta) == d + 3
    assert resumed.theta[d + 1] == gaussian_process.LOG_BOUNDS_ADDITIVE[0]
    X, y = resumed.window()
    z = resumed.transform(y)
    rng = np.random.default_rng(5)
    Q = np.vstack([X, [space.to_vector(space.sample(rng)) for _ in range(20)]])
    cats = resumed.cats
    old = np.concatenate([old_theta[:d + 1], [-np.inf], old_theta[d + 1:]])  # exactly no additive part
    converted, exact = GP(X, z, cats, resumed.theta).predict(Q)[0], GP(X, z, cats, old).predict(Q)[0]
    assert np.ptp(exact) > 0.5 and np.allclose(converted, exact, atol=1e-2)
    seen = set(resumed.seen)
    s = resumed.ask()
    assert space.contains(s.config) and config_key(s.config) not in seen


def test_expected_improvement_prefers_mean_then_uncertainty():
    ei = expected_improvement(np.array([0.0, 1.0, 0.0]), np.array([0.1, 0.1, 1.0]), best=0.5)
    assert ei[1] > ei[2] > ei[0] > 0


def test_maximize_climbs_to_the_acquisition_optimum_and_skips_seen():
    space = SearchSpace([Categorical(f"x{i}", {}, tuple(range(5))) for i in range(5)])
    rng = np.random.default_rng(0)

    def acq(configs):
        return np.array([-sum((c[f"x{i}"] - 3) ** 2 for i in range(5)) for c in configs], dtype=float)
    optimum = {f"x{i}": 3 for i in range(5)}
    assert maximize(acq, space, rng, [], set(), n_random=8, n_starts=2, max_steps=10) == optimum
    other = maximize(acq, space, rng, [], {config_key(optimum)}, n_random=8, n_starts=2, max_steps=10)
    assert other != optimum and acq([other])[0] == -1.0


def test_gaussian_ranks_are_monotone_and_tie_aware():
    z = gaussian_ranks(np.array([10.0, 90.0, 91.0, 90.0]))
    assert z[0] < z[1] == z[3] < z[2]
    assert abs(float(np.mean(z))) < 1e-12


def test_power_transform_keeps_a_peak_apart_where_ranks_do_not():
    """A flat landscape with one peak (Hartmann-like): ranks space the flat part's noise-level
    differences as far apart as the peak; the power transform keeps the peak far away."""
    y = np.concatenate([np.linspace(0.0, 0.01, 19), [3.0]])
    for z in (power_transform(y), gaussian_ranks(y)):
        assert np.all(np.diff(z) > 0)  # monotone
    p, r = power_transform(y), gaussian_ranks(y)
    assert abs(float(np.mean(p))) < 1e-9 and abs(float(np.std(p)) - 1.0) < 1e-9
    assert (p[-1] - p[-2]) > 5 * (p[-2] - p[0])  # the peak stays apart from the flat part
    assert (r[-1] - r[-2]) < (r[-2] - r[0])  # ranks put it next to the flat part
    assert np.all(power_transform(np.full(5, 91.0)) == 0.0)


def test_power_transform_tames_a_long_tail_of_failures():
    """NAS-Bench-201-like scores: most near 90, a few diverged at 10: after the transform the
    spread of the good scores is a larger share of the whole than after plain standardisation."""
    rng = np.random.default_rng(0)
    y = np.concatenate([rng.normal(90.0, 1.0, 40), np.full(5, 10.0)])
    p = power_transform(y)
    standard = (y - y.mean()) / y.std()
    good = y > 50
    assert np.ptp(p[good]) / np.ptp(p) > 1.5 * np.ptp(standard[good]) / np.ptp(standard)


def test_tpe_prior_keeps_density_everywhere_and_samples_from_the_prior():
    """With the prior (Bergstra et al. 2011; Optuna's consider_prior and magic clip), a point far
    from every observation keeps at least the prior's share of density, and candidates land far
    from a tight cluster of good points; without it they never do."""
    space = SearchSpace([Float("x", {}, 0.0, 1.0)])
    cats = np.zeros(1, dtype=int)
    X = np.full((9, 1), 0.1)
    far = np.array([[0.9]])
    without, with_prior = KDE(X, cats, 1e-3), KDE(X, cats, 1e-3, prior_weight=1.0)
    assert with_prior.log_pdf(far)[0] >= np.log(1.0 / 10) - 1e-9
    assert without.log_pdf(far)[0] < np.log(1.0 / 10) - 10
    assert with_prior.bw[0] >= 0.1 - 1e-12  # magic clip: 1 / min(100, n + 1)
    y = np.concatenate([np.ones(3), np.zeros(6)])  # 3 good (top 33%), all at 0.1

    def far_share(weight):
        draws = [propose(space, X, y, np.random.default_rng(seed), 34.0, 3, 1, 1.0, 1e-3,
                         prior_weight=weight)["x"] for seed in range(400)]
        return float(np.mean(np.abs(np.array(draws) - 0.1) > 0.45))
    assert far_share(0.0) == 0.0
    assert 0.1 < far_share(1.0) < 0.6
    with pytest.raises(ValueError, match="prior_weight must be at least 0"):
        make_strategy("tpe", space, prior_weight=-1.0)


def test_gp_beats_random_tenfold_on_hartmann6():
    """Mean simple regret after 50 evaluations over 3 seeds (the bench uses 30)."""
    from nasrun.strategies.gp import GaussianProcessBO
    space, hartmann6, optimum = bench_function("hartmann6")

    def neg_hartmann(c):
        return -hartmann6(c)
    regret = {m: np.mean([-optimum - run(make_strategy(m, space, seed=s, metric="score", mode="max"),
                                         neg_hartmann, 50)[-1] for s in range(3)]) for m in ("random", "gp")}
    assert regret["gp"] < regret["random"] / 10, regret
    with pytest.raises(ValueError, match="transform must be one of"):
        GaussianProcessBO(space, transform="log")


@pytest.mark.parametrize("name", MODEL_BASED)
def test_model_based_beats_random_on_branin(name):
    """Mean regret after 30 evaluations over 10 seeds: each model at least halves random search's."""
    space, branin, optimum = bench_function("branin")

    def neg_branin(c):
        return -branin(c)
    regret = {m: np.mean([-run(make_strategy(m, space, seed=s, metric="score", mode="max"), neg_branin,
                               30)[-1] - optimum for s in range(10)]) for m in ("random", name)}
    assert regret[name] < regret["random"] / 2, regret
