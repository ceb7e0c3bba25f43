"""Regularized (aging) evolution, Real et al. (AAAI 2019).

The first ``population_size`` trials are random. After that each ask takes ``sample_size``
distinct random members of the population, mutates the best of them with ``space.mutate`` (one
active parameter changes) and returns the child. A told result joins the population and the
*oldest* member leaves once there are more than ``population_size``. Asynchronous: asks never
wait. A failed random trial is replaced by another random one; failed children never join.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Dict, Mapping

from .base import Strategy


class RegularizedEvolution(Strategy):
    options = {"population_size": 50, "sample_size": 10}

    def __init__(self, space, seed=0, metric="valid_accuracy", mode="max", **options):
        super().__init__(space, seed, metric, mode, **options)
        if int(self.opts["population_size"]) < 1 or int(self.opts["sample_size"]) < 1:
            raise ValueError("population_size and sample_size must be at least 1")
        # members in join order: {"trial_id", "config", "score"}
        self.population: deque = deque()
        self.random_live = 0  # random trials asked and not failed

    def ask(self):
        P, S = int(self.opts["population_size"]), int(self.opts["sample_size"])
        if self.random_live < P or not self.population:
            self.random_live += 1
            return self._new(self.space.sample(self.rng), origin="random")
        members = list(self.population)
        picks = self.rng.choice(len(members), size=min(S, len(members)), replace=False)
        parent = max((members[int(i)] for i in sorted(picks)), key=lambda m: m["score"])
        child = self.space.mutate(parent["config"], self.rng)
        return self._new(child, origin="mutation", parent=parent["trial_id"])

    def tell(self, outcome):
        s = self._take(outcome)
        score = self.score(outcome)
        if score is None:
            if s.info.get("origin") == "random":
                self.random_live -= 1
            return
        self.population.append({"trial_id": s.trial_id, "config": dict(s.config),
                                "score": float(score)})
        while len(self.population) > int(self.opts["population_size"]):
            self.population.popleft()

    def _state(self) -> Dict[str, Any]:
        return {"population": [dict(m) for m in self.population], "random_live": self.random_live}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        self.population = deque(dict(m) for m in state["population"])
        self.random_live = int(state["random_live"])
