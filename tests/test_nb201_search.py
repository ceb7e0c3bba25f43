"""Strategies against random search on the real NAS-Bench-201 CIFAR-10 table, over 20 seeds."""
import math

import numpy as np
import pytest
import torch
from scipy.stats import mannwhitneyu

from nasrun.simulate import simulate_spec

torch.set_num_threads(1)

SEEDS = range(20)
WORKERS = 8


def finals(name, **kw):
    return [r.final[0] for r in simulate_spec(name, workers=WORKERS, seeds=SEEDS, **kw)]


def assert_better(ours, random, what):
    p = mannwhitneyu(ours, random, alternative="greater").pvalue
    assert np.mean(ours) > np.mean(random) and p < 0.05, (what, np.mean(ours), np.mean(random), p)


@pytest.mark.slow
def test_evolution_and_rl_beat_random_search():
    assert_better(finals("evolution", max_trials=150), finals("random", max_trials=150),
                  "evolution at 150")
    assert_better(finals("rl", max_trials=500), finals("random", max_trials=500), "rl at 500")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["asha", "bohb"])
def test_multi_fidelity_reaches_random_search_quality_sooner(name):
    budget = 60000.0
    random = simulate_spec("random", workers=WORKERS, seeds=SEEDS, budget_seconds=budget)
    ours = simulate_spec(name, workers=WORKERS, seeds=SEEDS, budget_seconds=budget)
    # per seed: when random search first had its final incumbent, and when we matched it
    # (never within the budget counts as twice the budget: only the ranks matter)
    t_random = [r.time_to_reach(r.final[0]) for r in random]
    t_ours = [min(o.time_to_reach(r.final[0]), 2 * budget) for o, r in zip(ours, random)]
    assert all(math.isfinite(t) for t in t_random)
    p = mannwhitneyu(t_ours, t_random, alternative="less").pvalue
    assert np.mean(t_ours) < np.mean(t_random) and p < 0.05, (np.mean(t_ours), np.mean(t_random), p)
