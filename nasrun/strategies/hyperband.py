"""Hyperband (Li et al., JMLR 2018): successive halving over brackets of budgets.

Budgets run from ``min_budget`` to ``max_budget`` in factors of ``eta``, on the fidelities the
objective declares (``fidelity.rung_budgets``: rungs ``0 .. s_max``). Bracket ``s`` (``s = s_max,
..., 0``, then again from ``s_max``: the schedule loops forever and the runtime's budget ends the
run) starts ``n = ceil((s_max+1)/(s+1) * eta**s)`` configurations at rung ``s_max - s``
(:meth:`Hyperband.schedule`); when every trial of a rung has been told, the best
``floor(n_i / eta)`` go on to the next rung as NEW trials with ``resume_from`` = the lower-rung
trial and the higher budget (a rung that landed on the fidelity of the one below is skipped: its
ranking would be the same, so its promotion is made without training). Failed trials are never
promoted (no information).

Synchronous within a bracket: while a bracket's rung is incomplete it has nothing to hand out.
An otherwise idle worker then starts the next bracket (as HpBandSter does), so several brackets
run in parallel: with the default ``max_brackets: 0`` as many as the idle workers ask for (never
more than the trials in flight: a bracket opens only when every open one is waiting on a
result); with ``max_brackets: N`` at most N are open and ``ask()`` otherwise returns ``WAIT``
(``1``: one bracket at a time, the paper's sequential schedule, which leaves most of several
workers idle).

Subclasses choose new configurations by overriding :meth:`Hyperband._sample` (BOHB) and see
every result through :meth:`Hyperband._observe`.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from ..space import SearchSpace
from ..trial import AskStatus, Outcome, Suggestion
from .base import WAIT, Strategy
from .fidelity import Fidelities, check_fidelity, rung_budgets, snapped_ladder


class Hyperband(Strategy):
    options = {"min_budget": 1.0, "max_budget": 81.0, "eta": 3.0, "max_brackets": 0}
    multi_fidelity = True

    def __init__(self, space: SearchSpace, seed: int = 0, metric: str = "valid_accuracy",
                 mode: str = "max", fidelities: Optional[Fidelities] = None, **options: Any):
        """``fidelities``: the budgets the objective declares (None: any budget)."""
        super().__init__(space, seed, metric, mode, **options)
        check_fidelity(self.opts)
        if int(self.opts["max_brackets"]) < 0:
            raise ValueError("max_brackets must be at least 0 (0: no limit)")
        ladder = (self.opts["min_budget"], self.opts["max_budget"], self.opts["eta"], fidelities)
        self.budgets: List[float] = rung_budgets(*ladder)  # the distinct rungs
        # the brackets follow the ladder; rungs that landed on the fidelity of the rung below are
        # skipped (their ranking would be the same): the promotion goes on to the next budget
        self.ladder: List[float] = snapped_ladder(*ladder)
        self.s_max = len(self.ladder) - 1
        self.brackets: List[Dict[str, Any]] = []  # open brackets, oldest first
        self.iteration = 0  # brackets opened so far

    # -- what BOHB overrides -----------------------------------------------------------------
    def _sample(self, budget: float) -> Dict[str, Any]:
        return self.space.sample(self.rng)

    def _observe(self, suggestion: Suggestion, score: Optional[float]) -> None:
        pass

    # -- the schedule ----------------------------------------------------------------------
    def _sizes(self, s: int) -> List[int]:
        """Trials per rung of bracket ``s``, from its first rung (``s_max - s``) to the top."""
        eta = float(self.opts["eta"])
        n0 = int(math.ceil((self.s_max + 1) / (s + 1) * eta ** s))
        return [max(1, int(math.floor(n0 * eta ** -i + 1e-9))) for i in range(s + 1)]

    def schedule(self) -> List[List[Tuple[int, float]]]:
        """Each bracket's rungs as (trials, budget), in the order brackets open (``s_max`` first),
        without the skipped rungs."""
        out = []
        for s in range(self.s_max, -1, -1):
            rungs = list(zip(self._sizes(s), self.ladder[self.s_max - s:]))
            out.append([r for i, r in enumerate(rungs) if i == 0 or r[1] > rungs[i - 1][1]])
        return out

    def _open(self) -> Dict[str, Any]:
        s = self.s_max - self.iteration % (self.s_max + 1)
        sizes = self._sizes(s)
        n0 = sizes[0]
        br = {"id": self.iteration, "s": s, "sizes": sizes, "rung": 0, "to_sample": n0,
              "queue": [], "outstanding": 0, "results": []}
        self.iteration += 1
        self.brackets.append(br)
        return br

    def _budget(self, br: Mapping[str, Any], rung: Optional[int] = None) -> float:
        budget: float = self.ladder[self.s_max - br["s"] + (br["rung"] if rung is None else rung)]
        return budget

    def _next(self, br: Dict[str, Any]) -> Optional[Suggestion]:
        info = {"bracket": br["id"], "rung": br["rung"]}
        budget = self._budget(br)
        if br["to_sample"] > 0:
            br["to_sample"] -= 1
            br["outstanding"] += 1
            return self._new(self._sample(budget), budget, **info)
        if br["queue"]:
            item = br["queue"].pop(0)
            br["outstanding"] += 1
            return self._new(item["config"], budget, item["resume_from"], **info)
        return None

    def ask(self) -> Union[Suggestion, AskStatus]:
        for br in self.brackets:
            s = self._next(br)
            if s is not None:
                return s
        limit = int(self.opts["max_brackets"])
        if limit == 0 or len(self.brackets) < limit:
            first = self._next(self._open())
            assert first is not None  # a new bracket has at least one configuration to sample
            return first
        return WAIT

    def tell(self, outcome: Outcome) -> None:
        s = self._take(outcome)
        score = self.score(outcome)
        self._observe(s, score)
        br = next((b for b in self.brackets if b["id"] == s.info["bracket"]), None)
        if br is None:  # pragma: no cover - a bracket closes only when nothing is outstanding
            return
        br["outstanding"] -= 1
        if score is not None:
            br["results"].append({"trial_id": s.trial_id, "config": dict(s.config),
                                  "score": float(score)})
        if br["outstanding"] == 0 and br["to_sample"] == 0 and not br["queue"]:
            self._promote(br)

    def _promote(self, br: Dict[str, Any]) -> None:
        ranked = sorted(br["results"], key=lambda r: (-r["score"], r["trial_id"]))
        nxt = br["rung"] + 1
        while nxt < len(br["sizes"]) and self._budget(br, nxt) <= self._budget(br):
            nxt += 1  # the same fidelity: the same ranking, promoted on without training
        k = min(br["sizes"][nxt], len(ranked)) if nxt < len(br["sizes"]) else 0
        if k == 0:
            self.brackets.remove(br)
            return
        br["rung"] = nxt
        br["queue"] = [{"config": r["config"], "resume_from": r["trial_id"]} for r in ranked[:k]]
        br["results"] = []

    def promotable(self, trial_id: int) -> bool:
        """A told trial may be promoted while its bracket's rung is open (or it waits in the
        queue of promotions); once the rung is decided, the others are released."""
        for br in self.brackets:
            if any(r["trial_id"] == trial_id for r in br["results"]) or \
                    any(q["resume_from"] == trial_id for q in br["queue"]):
                return True
        return False

    def _state(self) -> Dict[str, Any]:
        return {"brackets": _copy(self.brackets), "iteration": self.iteration}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        self.brackets = _copy(state["brackets"])
        self.iteration = int(state["iteration"])


def _copy(x: Any) -> Any:
    """A deep copy of plain data (dicts, lists, scalars)."""
    if isinstance(x, dict):
        return {k: _copy(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_copy(v) for v in x]
    return x
