"""What the model-based strategies share: neighbourhoods, expected improvement, its maximiser.

* :func:`neighbours`: the configurations one edit away (one active parameter changed,
  conditions repaired): every other choice of a categorical, every other value of a small
  integer (else +-1 and a few random steps), a few Gaussian steps of a float. Local search
  walks it; the acquisition maximiser climbs it.
* :func:`expected_improvement`: EI of a Gaussian predictive distribution (higher is better).
* :func:`maximize`: random candidates, then greedy hill climbing over :func:`neighbours` from
  the best candidates and the incumbents; configurations already seen (started or pending) are
  never returned.

Candidates are always real configurations of the space (sampled, or mutated and completed), so
integers stay integers and categoricals one choice: the models score points of the space only.
"""
from __future__ import annotations

from typing import Any, Callable, Container, Dict, List, Optional, Sequence

import numpy as np
from scipy.stats import norm

from ..space import SearchSpace
from .kde_model import config_key

Config = Dict[str, Any]
#: scores a batch of configurations (higher is better)
Acquisition = Callable[[List[Config]], np.ndarray]

SMALL_INTEGER = 8  # integers with at most this many values: every other value is a neighbour


def neighbours(space: SearchSpace, config: Config, rng: np.random.Generator,
               numeric_steps: int = 4) -> List[Config]:
    """The configurations one edit away from ``config`` (see the module docstring)."""
    out: List[Config] = []
    parents = {parent for p in space for parent in p.when}
    for p in space:
        if p.name not in config or p.cardinality <= 1:
            continue
        v = config[p.name]
        values: List[Any]
        if p.kind == "categorical":
            i = p.index(v)
            values = [c for j, c in enumerate(p.choices) if j != i]
        elif p.kind == "int" and p.cardinality <= SMALL_INTEGER:
            values = [u for u in range(p.low, p.high + 1) if u != v]
        else:
            values = [p.mutate(v, rng) for _ in range(numeric_steps)]
            if p.kind == "int":
                values = sorted({u for u in values + [v - 1, v + 1] if u != v and p.contains(u)})
        for value in values:  # conditions to repair only when p is some parameter's parent
            changed = {**config, p.name: value}
            out.append(space.complete(changed, rng) if p.name in parents else changed)
    return out


def random_unseen(space: SearchSpace, rng: np.random.Generator, seen: Container[str],
                  tries: int = 100) -> Config:
    """A random configuration not in ``seen`` (any random one after ``tries`` misses)."""
    config = space.sample(rng)
    for _ in range(tries - 1):
        if config_key(config) not in seen:
            break
        config = space.sample(rng)
    return config


def expected_improvement(mean: np.ndarray, std: np.ndarray, best: float,
                         xi: float = 0.0) -> np.ndarray:
    """E[max(0, f - best - xi)] for f ~ N(mean, std^2), elementwise (maximisation)."""
    std = np.maximum(std, 1e-12)
    z = (mean - best - xi) / std
    return np.asarray((mean - best - xi) * norm.cdf(z) + std * norm.pdf(z))


def maximize(acquisition: Acquisition, space: SearchSpace, rng: np.random.Generator,
             incumbents: Sequence[Config], seen: Container[str], n_random: int = 256,
             n_starts: int = 5, max_steps: int = 5) -> Optional[Config]:
    """The unseen configuration with the largest acquisition found by random candidates plus
    greedy local search from the ``n_starts`` best of them and the ``incumbents``; None when
    every candidate was seen."""
    pool: Dict[str, Config] = {}
    for c in list(incumbents) + [space.sample(rng) for _ in range(n_random)]:
        pool.setdefault(config_key(c), c)
    keys = list(pool)
    values = dict(zip(keys, acquisition([pool[k] for k in keys])))
    random_keys = [k for k in keys if k not in seen]
    climbers = sorted(random_keys, key=lambda k: -values[k])[:n_starts]
    climbers += [config_key(c) for c in incumbents if config_key(c) not in climbers]
    for _ in range(max_steps):  # all climbers take a step together: one batch per step
        fresh: Dict[str, Config] = {}
        around: Dict[str, List[str]] = {}
        for current in climbers:
            around[current] = []
            for c in neighbours(space, pool[current], rng):
                k = config_key(c)
                around[current].append(k)
                if k not in values and k not in fresh:
                    fresh[k] = c
        if fresh:
            fkeys = list(fresh)
            values.update(zip(fkeys, acquisition([fresh[k] for k in fkeys])))
            pool.update(fresh)
        moved = []
        for current in climbers:
            if around[current]:
                step = max(around[current], key=lambda k: values[k])
                if values[step] > values[current] and step not in moved:
                    moved.append(step)
        if not moved:
            break
        climbers = moved
    unseen = [k for k in pool if k not in seen]
    if not unseen:
        return None
    return pool[max(unseen, key=lambda k: values[k])]
