"""ASHA, asynchronous successive halving (Li et al., MLSys 2020).

Rungs ``k = 0..s_max`` with budgets ``fidelity.rung_budgets`` (the top rung is ``max_budget``).
On each ask, from the top rung down, a finished trial of rung ``k`` that is among the best
``floor(n_k / eta)`` of the ``n_k`` trials told on that rung, and not yet promoted, is promoted:
a NEW trial with ``resume_from`` = that trial and the budget of rung ``k + 1``. Otherwise a new
random configuration starts on rung 0. It never waits and never finishes. Failed trials do not
count in their rung.
"""
from __future__ import annotations

import bisect
import math
from typing import Any, Dict, List, Mapping

from .base import Strategy
from .fidelity import check_fidelity, rung_budgets


STATE_WINDOW = 10


class ASHA(Strategy):
    options = {"min_budget": 1.0, "max_budget": 81.0, "eta": 3.0}
    multi_fidelity = True

    def __init__(self, space, seed=0, metric="valid_accuracy", mode="max", **options):
        super().__init__(space, seed, metric, mode, **options)
        check_fidelity(self.opts)
        self.budgets = rung_budgets(self.opts["min_budget"], self.opts["max_budget"],
                                    self.opts["eta"])
        # per rung, told trials best first: {"trial_id", "config", "score", "promoted"}
        self.rungs: List[List[Dict[str, Any]]] = [[] for _ in self.budgets]

    def _promotable(self, k: int):
        rung = self.rungs[k]  # kept best first
        top = int(math.floor(len(rung) / float(self.opts["eta"]) + 1e-9))
        return next((r for r in rung[:top] if not r["promoted"]), None)

    def ask(self):
        for k in range(len(self.budgets) - 2, -1, -1):
            r = self._promotable(k)
            if r is not None:
                r["promoted"] = True
                return self._new(r["config"], self.budgets[k + 1], r["trial_id"], rung=k + 1)
        return self._new(self.space.sample(self.rng), self.budgets[0], rung=0)

    def tell(self, outcome):
        s = self._take(outcome)
        score = self.score(outcome)
        if score is None:
            return
        rung = self.rungs[int(s.info["rung"])]
        entry = {"trial_id": s.trial_id, "config": dict(s.config), "score": float(score),
                 "promoted": False}
        keys = [(-r["score"], r["trial_id"]) for r in rung]
        rung.insert(bisect.bisect(keys, (-entry["score"], entry["trial_id"])), entry)

    def promotable(self, trial_id: int) -> bool:
        """A trial below the top rung may still be promoted from its saved state while it ranks
        within ``STATE_WINDOW`` places of its rung's promotion threshold (``floor(n / eta)``); a
        trial further down is released: were it promoted later after all, it would restart
        from scratch (the decisions are the same, only the compute differs). That bounds the
        states kept to about STATE_WINDOW per rung instead of every trial ever told."""
        for k, rung in enumerate(self.rungs[:-1]):
            for rank, r in enumerate(rung):
                if r["trial_id"] == trial_id:
                    top = int(math.floor(len(rung) / float(self.opts["eta"]) + 1e-9))
                    return not r["promoted"] and rank < top + STATE_WINDOW
        return False

    def _state(self) -> Dict[str, Any]:
        return {"rungs": [[dict(r) for r in rung] for rung in self.rungs]}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        self.rungs = [[dict(r) for r in rung] for rung in state["rungs"]]
