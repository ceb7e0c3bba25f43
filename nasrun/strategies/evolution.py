"""Regularized (aging) evolution, Real et al. (AAAI 2019).

The first ``population_size`` trials are random. After that each ask takes ``sample_size``
distinct random members of the population, mutates the best of them with ``space.mutate`` (one
active parameter changes) and returns the child. A told result joins the population and the
*oldest* member leaves once there are more than ``population_size``. Asynchronous: asks never
wait. A failed random trial is replaced by another random one; failed children never join.

Several objectives (not scalarized): members keep their oriented objective values and the
parent is the tournament sample's best by Pareto rank, then crowding distance (NSGA-II's crowded
comparison, computed within the sample). Chosen over a weighted sum because it needs no weights
and keeps the search spread along the whole front, non-convex parts included. A trial that
violates a constraint scores None: like a failure it never joins the population, so it is
never a parent.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Deque, Dict, Mapping, Union

from ..multiobjective import best_by_rank_and_crowding
from ..space import SearchSpace
from ..trial import AskStatus, Outcome, Suggestion
from .base import Strategy


class RegularizedEvolution(Strategy):
    options = {"population_size": 50, "sample_size": 10}
    multi_objective = True

    def __init__(self, space: SearchSpace, seed: int = 0, metric: str = "valid_accuracy",
                 mode: str = "max", **options: Any):
        super().__init__(space, seed, metric, mode, **options)
        if int(self.opts["population_size"]) < 1 or int(self.opts["sample_size"]) < 1:
            raise ValueError("population_size and sample_size must be at least 1")
        # members in join order: {"trial_id", "config", "score"[, "point"]}
        self.population: Deque[Dict[str, Any]] = deque()
        self.random_live = 0  # random trials asked and not failed

    def ask(self) -> Union[Suggestion, AskStatus]:
        P, S = int(self.opts["population_size"]), int(self.opts["sample_size"])
        if self.random_live < P or not self.population:
            self.random_live += 1
            return self._new(self.space.sample(self.rng), origin="random")
        members = list(self.population)
        picks = self.rng.choice(len(members), size=min(S, len(members)), replace=False)
        sample = [members[int(i)] for i in sorted(picks)]
        if self.pareto:
            parent = sample[best_by_rank_and_crowding([tuple(m["point"]) for m in sample])]
        else:
            parent = max(sample, key=lambda m: m["score"])
        child = self.space.mutate(parent["config"], self.rng)
        return self._new(child, origin="mutation", parent=parent["trial_id"])

    def tell(self, outcome: Outcome) -> None:
        s = self._take(outcome)
        score = self.score(outcome)
        point = self.point(outcome) if self.pareto else None
        if score is None or (self.pareto and point is None):
            if s.info.get("origin") == "random":
                self.random_live -= 1
            return
        member = {"trial_id": s.trial_id, "config": dict(s.config), "score": float(score)}
        if self.pareto:
            assert point is not None  # returned above otherwise
            member["point"] = list(point)
        self.population.append(member)
        while len(self.population) > int(self.opts["population_size"]):
            self.population.popleft()

    def _state(self) -> Dict[str, Any]:
        return {"population": [dict(m) for m in self.population], "random_live": self.random_live}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        self.population = deque(dict(m) for m in state["population"])
        self.random_live = int(state["random_live"])
