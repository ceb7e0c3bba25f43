"""ASHA, asynchronous successive halving (Li et al., MLSys 2020).

Rungs ``k = 0..s_max`` with budgets ``fidelity.rung_budgets`` (from ``min_budget`` to
``max_budget`` in factors of ``eta``, on the fidelities the objective declares).
On each ask, from the top rung down, a finished trial of rung ``k`` that is among the best
``floor(n_k / eta**m_k)`` of the ``n_k`` trials told on that rung (``m_k = 1`` unless rungs that
landed on the same fidelity were dropped: ``fidelity.promotion_steps``), and not yet promoted,
is promoted:
a NEW trial with ``resume_from`` = that trial and the budget of rung ``k + 1``. Otherwise a new
random configuration starts on rung 0. It never waits and never finishes. Failed trials do not
count in their rung.
"""
from __future__ import annotations

import bisect
import math
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from ..space import SearchSpace
from ..trial import AskStatus, Outcome, Suggestion
from .base import Strategy
from .fidelity import Fidelities, check_fidelity, promotion_steps, rung_budgets

STATE_WINDOW = 10


class ASHA(Strategy):
    options = {"min_budget": 1.0, "max_budget": 81.0, "eta": 3.0}
    multi_fidelity = True

    def __init__(self, space: SearchSpace, seed: int = 0, metric: str = "valid_accuracy",
                 mode: str = "max", fidelities: Optional[Fidelities] = None, **options: Any):
        """``fidelities``: the budgets the objective declares (None: any budget)."""
        super().__init__(space, seed, metric, mode, **options)
        check_fidelity(self.opts)
        ladder = (self.opts["min_budget"], self.opts["max_budget"], self.opts["eta"], fidelities)
        self.budgets: List[float] = rung_budgets(*ladder)
        # per rung but the top: promotions keep the best eta**-steps (steps > 1 where the ladder's
        # rungs landed on one fidelity: their identical rankings are not trained again)
        self.keep: List[float] = [float(self.opts["eta"]) ** -m for m in promotion_steps(*ladder)]
        # per rung, told trials best first: {"trial_id", "config", "score", "promoted"}
        self.rungs: List[List[Dict[str, Any]]] = [[] for _ in self.budgets]
        self._index()

    def _index(self) -> None:
        """Lookup structures derived from ``rungs`` (not part of the state): per rung the sort
        keys, per trial its rung and key, and the keys of the entries not promoted yet, so ask, tell
        and promotable cost O(log n) (plus list insertions), not O(trials told)."""
        self._keys: List[List[Tuple[float, int]]] = [
            [(-r["score"], r["trial_id"]) for r in rung] for rung in self.rungs]
        self._where: Dict[int, Tuple[int, Tuple[float, int]]] = {
            r["trial_id"]: (k, (-r["score"], r["trial_id"]))
            for k, rung in enumerate(self.rungs) for r in rung}
        self._free: List[List[Tuple[float, int]]] = [  # keys of the entries not promoted yet
            [(-r["score"], r["trial_id"]) for r in rung if not r["promoted"]] for rung in self.rungs]

    def _top(self, k: int) -> int:
        return int(math.floor(len(self.rungs[k]) * self.keep[k] + 1e-9))

    def _promotable(self, k: int) -> Optional[Dict[str, Any]]:
        """The best entry of rung ``k`` not promoted yet, if it is within the rung's top 1/eta."""
        if not self._free[k]:
            return None
        rank = bisect.bisect_left(self._keys[k], self._free[k][0])
        return self.rungs[k][rank] if rank < self._top(k) else None

    def ask(self) -> Union[Suggestion, AskStatus]:
        for k in range(len(self.budgets) - 2, -1, -1):
            r = self._promotable(k)
            if r is not None:
                r["promoted"] = True
                self._free[k].pop(0)
                return self._new(r["config"], self.budgets[k + 1], r["trial_id"], rung=k + 1)
        return self._new(self.space.sample(self.rng), self.budgets[0], rung=0)

    def tell(self, outcome: Outcome) -> None:
        s = self._take(outcome)
        score = self.score(outcome)
        if score is None:
            return
        k = int(s.info["rung"])
        entry: Dict[str, Any] = {"trial_id": s.trial_id, "config": dict(s.config), "score": float(score),
                 "promoted": False}
        key = (-entry["score"], entry["trial_id"])
        i = bisect.bisect(self._keys[k], key)
        self._keys[k].insert(i, key)
        self.rungs[k].insert(i, entry)
        self._where[s.trial_id] = (k, key)
        bisect.insort(self._free[k], key)

    def promotable(self, trial_id: int) -> bool:
        """A trial below the top rung may still be promoted from its saved state while it ranks
        within ``STATE_WINDOW`` places of its rung's promotion threshold (``floor(n / eta)``); a
        trial further down is released: were it promoted later after all, it would restart
        from scratch (the decisions are the same, only the compute differs). That bounds the
        states kept to about STATE_WINDOW per rung instead of every trial ever told."""
        where = self._where.get(trial_id)
        if where is None or where[0] >= len(self.rungs) - 1:
            return False
        k, key = where
        rank = bisect.bisect_left(self._keys[k], key)
        return not self.rungs[k][rank]["promoted"] and rank < self._top(k) + STATE_WINDOW

    def _state(self) -> Dict[str, Any]:
        return {"rungs": [[dict(r) for r in rung] for rung in self.rungs]}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        self.rungs = [[dict(r) for r in rung] for rung in state["rungs"]]
        self._index()
