"""Test helpers shared by the strategy tests: spaces, a synthetic objective, an async driver."""
from __future__ import annotations

import copy
import json
import math

import numpy as np

from nasrun.space import Categorical, Float, Integer, SearchSpace, builtin_params
from nasrun.space.builtin import canonical_key
from nasrun.strategies import FINISHED, STRATEGIES, WAIT, make_strategy
from nasrun.strategies.dedupe import Dedupe
from nasrun.strategies.fidelity import Fidelities
from nasrun.trial import Outcome

MF_OPTIONS = {"min_budget": 1.0, "max_budget": 9.0, "eta": 3.0}
# declared fidelities that move the middle rung (3 -> 2): rungs 1, 2, 9
MF_FIDELITIES = Fidelities.of(1.0, 9.0, (1.0, 2.0, 5.0, 9.0))


def spaces():
    return {
        "nb201": SearchSpace(builtin_params("nb201", {})),
        "chain": SearchSpace(builtin_params("chain", {})),
        "hpo": SearchSpace([
            Categorical("optimizer", {}, ("sgd", "adam")),
            Float("lr", {}, 1e-5, 1e-1, log=True),
            Float("momentum", {"optimizer": ("sgd",)}, 0.0, 0.99),
            Float("beta2", {"optimizer": ("adam",)}, 0.9, 0.9999),
            Integer("batch_size", {}, 16, 512, log=True),
            Integer("layers", {}, 1, 5),
            Categorical("activation", {"layers": (3, 4, 5)}, ("relu", "gelu", "tanh")),
        ]),
    }


def build(name, space, seed=0, **extra):
    """A registered strategy by name; ``NAME+dedupe`` wraps it in :class:`Dedupe` (the
    space's canonical form: nb201's for the nb201 space)."""
    base, _, wrap = name.partition("+")
    opts: dict = dict(MF_OPTIONS, fidelities=MF_FIDELITIES) if STRATEGIES[base].multi_fidelity else {}
    if base == "rl":
        opts.update(replicas=3, samples_per_replica=2, hidden_size=8)
    opts.update(extra)
    strategy = make_strategy(base, space, seed=seed, metric="score", mode="max", **opts)
    if wrap == "dedupe":
        is_nb201 = set(space.params) == set(SearchSpace(builtin_params("nb201", {})).params)
        return Dedupe(strategy, canonical_key("nb201" if is_nb201 else None))
    return strategy


def score(space, config, budget):
    """A deterministic objective: prefers high unit values, more so with more budget."""
    v = np.nan_to_num(space.to_vector(config), nan=0.3)
    w = np.linspace(1.0, 2.0, len(v))
    return float(v @ w) * (1.0 - 0.5 / (1.0 + (budget or 9.0)))


class Driver:
    """Keeps up to ``outstanding`` trials in flight and tells them back in random order;
    every 5th trial fails. Deterministic given its seed, and copyable with its strategy."""

    def __init__(self, strategy, seed=0, outstanding=6):
        self.strategy, self.outstanding = strategy, outstanding
        self.rng = np.random.default_rng(seed)
        self.pending, self.asked, self.told = [], [], {}

    def step(self):
        """One ask (if anything is asked) and, when full or waiting, one tell."""
        s = None
        if len(self.pending) < self.outstanding:
            s = self.strategy.ask()
            if s is FINISHED:
                return s
            if s is not WAIT:
                self.pending.append(s)
                self.asked.append(s)
        if (s is WAIT or s is None or len(self.pending) >= self.outstanding) and self.pending:
            self.tell_one()
        return s

    def tell_one(self):
        s = self.pending.pop(int(self.rng.integers(len(self.pending))))
        if s.trial_id % 5 == 4:
            o = Outcome.failure(s.trial_id, "boom")
        else:
            o = Outcome(s.trial_id, "done",
                        {"score": score(self.strategy.space, s.config, s.budget)})
        self.told[s.trial_id] = o
        self.strategy.tell(o)

    def run_asks(self, n):
        """Step until ``n`` more suggestions were asked; returns them."""
        start = len(self.asked)
        for _ in range(50 * n):
            if len(self.asked) - start >= n:
                break
            if self.step() is FINISHED:
                break
        return self.asked[start:]

    def clone_with(self, strategy):
        other = Driver.__new__(Driver)
        other.strategy, other.outstanding = strategy, self.outstanding
        other.rng = copy.deepcopy(self.rng)
        other.pending, other.asked = list(self.pending), list(self.asked)
        other.told = dict(self.told)
        return other


def json_roundtrip(state):
    """``state`` as the store writes it: numpy arrays kept aside, the rest through JSON."""
    arrays = []

    def strip(x):
        if isinstance(x, np.ndarray):
            arrays.append(x.copy())
            return {"__array__": len(arrays) - 1}
        if isinstance(x, dict):
            assert all(isinstance(k, str) for k in x), f"non-string keys {list(x)[:3]}"
            return {k: strip(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [strip(v) for v in x]
        assert x is None or isinstance(x, (str, bool, int, float)), f"not plain data: {type(x)}"
        assert not isinstance(x, float) or math.isfinite(x), "non-finite float outside an array"
        return x

    def restore(x):
        if isinstance(x, dict):
            if set(x) == {"__array__"}:
                return arrays[x["__array__"]]
            return {k: restore(v) for k, v in x.items()}
        if isinstance(x, list):
            return [restore(v) for v in x]
        return x

    return restore(json.loads(json.dumps(strip(state), allow_nan=False)))
