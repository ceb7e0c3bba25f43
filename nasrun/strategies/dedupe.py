"""Never evaluate a configuration twice at the same budget, for any strategy (``strategy.dedupe``).

:class:`Dedupe` wraps a strategy (the *inner* one) when evaluations are deterministic (a table
objective, or a function objective declared ``deterministic``). Each inner suggestion is keyed
by ``(canonical(config), budget)``, where ``canonical`` maps equivalent configurations to one key
(:func:`~nasrun.space.builtin.canonical_key`: the configuration itself by default, the cell's
function for a space with the nb201 cell, :func:`~nasrun.space.builtin.nb201_key`):

* a key already evaluated successfully: the inner strategy is told the cached metrics at once
  (its trial id, no run) and is asked again, so evolution and the RL controller keep learning
  from what they proposed without spending an evaluation;
* a key being evaluated (asked, not yet told): the inner suggestion waits for that evaluation
  and is told its outcome when it comes; the inner strategy is asked again;
* a new key: handed out as the next trial.

Only handed-out trials are trials (the driver's ``max_trials`` counts evaluations); their ids are
the wrapper's own, consecutive in ask order; ``info["parent"]`` is translated from the inner
strategy's ids to the trial that evaluated that key, and so is ``resume_from`` when that trial
was the inner one's own (a promotion of a duplicate starts from scratch). A failed
evaluation is not cached (the key may be proposed and evaluated again), and nor is a trial a
stopper ended early (its metrics are not the budget's). Bounded: after ``max_draws`` duplicate
proposals in one ask, up to ``max_draws`` random configurations are tried (told to no one: the
inner strategy learns of one when it proposes it); when they are all known too, the space is
exhausted: ``WAIT`` while evaluations are outstanding, then ``FINISHED``. Pure; the state
(the inner strategy's, the cache, the waiting suggestions) is exact on resume.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np

from ..space.builtin import config_key
from ..trial import DONE, Outcome, Suggestion
from .base import FINISHED, WAIT, AskStatus, Strategy

Canonical = Callable[[Mapping[str, Any]], str]

#: duplicate proposals in one ask before random fallback, and random draws before giving up
MAX_DRAWS = 100


class Dedupe(Strategy):
    options: Dict[str, Any] = {}

    def __init__(self, inner: Strategy, canonical: Canonical = config_key,
                 max_draws: int = MAX_DRAWS):
        if max_draws < 1:
            raise ValueError("max_draws must be at least 1")
        self.multi_fidelity = inner.multi_fidelity
        self.multi_objective = inner.multi_objective
        super().__init__(inner.space, inner.seed, inner.metric, inner.mode, inner.objectives,
                         inner.constraints, inner.scalarize)
        self.rng = np.random.default_rng([inner.seed, 0x0DED])
        self.inner = inner
        self.canonical = canonical
        self.max_draws = int(max_draws)
        self.results: Dict[str, Tuple[int, Dict[str, float]]] = {}  # key -> (trial, metrics)
        self.inflight: Dict[str, int] = {}  # key -> trial evaluating it
        self.running: Dict[int, Tuple[Optional[int], str]] = {}  # trial -> (inner id, key)
        self.waiters: Dict[str, List[Suggestion]] = {}  # key -> inner suggestions waiting
        # inner trial id -> the trial it became (>= 0), or -1 - the trial that evaluated (or
        # evaluates) its key for a duplicate
        self.alias: List[int] = []
        self.own: Dict[int, int] = {}  # trial -> the inner trial it is (derived, promotable)
        self.answered = 0  # inner suggestions answered from the cache
        self.fallbacks = 0  # random configurations handed out after max_draws duplicates

    def key(self, config: Mapping[str, Any], budget: Optional[float]) -> str:
        return f"{budget!r}|{self.canonical(config)}"

    # -- ask / tell ------------------------------------------------------------------------
    def ask(self) -> Union[Suggestion, AskStatus]:
        last: Optional[Suggestion] = None
        for _ in range(self.max_draws):
            s = self.inner.ask()
            if not isinstance(s, Suggestion):
                return s
            k = self.key(s.config, s.budget)
            if k in self.results:
                trial, metrics = self.results[k]
                self._alias(s.trial_id, -1 - trial)
                self.answered += 1
                self.inner.tell(Outcome(s.trial_id, DONE, dict(metrics)))
            elif k in self.inflight:
                self._alias(s.trial_id, -1 - self.inflight[k])
                self.waiters.setdefault(k, []).append(s)
            else:
                return self._hand_out(s.config, s.budget, s, k)
            last = s
        budget = last.budget if last is not None else None
        for _ in range(self.max_draws):
            config = self.space.sample(self.rng)
            k = self.key(config, budget)
            if k not in self.results and k not in self.inflight:
                self.fallbacks += 1
                return self._hand_out(config, budget, None, k)
        return WAIT if self.pending else FINISHED

    def _alias(self, inner_id: int, trial: int) -> None:
        if inner_id != len(self.alias):
            raise ValueError(f"the wrapped strategy asked trial {inner_id} out of order")
        self.alias.append(trial)
        if trial >= 0:
            self.own[trial] = inner_id

    def _hand_out(self, config: Mapping[str, Any], budget: Optional[float],
                  s: Optional[Suggestion], k: str) -> Suggestion:
        if s is None:
            out = self._new(config, budget, None, origin="fallback")
        else:
            info = dict(s.info)
            if isinstance(info.get("parent"), int):
                info["parent"] = _trial(self.alias[info["parent"]])
            # a promotion continues the inner trial's own evaluation; one of a duplicate (an
            # equivalent configuration's trial) starts from scratch: its weights may not fit
            resume = None if s.resume_from is None or self.alias[s.resume_from] < 0 \
                else self.alias[s.resume_from]
            out = self._new(config, budget, resume, **info)
            self._alias(s.trial_id, out.trial_id)
        self.running[out.trial_id] = (None if s is None else s.trial_id, k)
        self.inflight[k] = out.trial_id
        return out

    def tell(self, outcome: Outcome) -> None:
        self._take(outcome)
        inner_id, k = self.running.pop(outcome.trial_id)
        del self.inflight[k]
        if outcome.ok and outcome.stopped_at is None:
            self.results[k] = (outcome.trial_id, {m: float(v) for m, v in outcome.metrics.items()
                                                  if _finite(v)})
        if inner_id is not None:
            self.inner.tell(_renamed(outcome, inner_id))
        for w in self.waiters.pop(k, []):
            self.inner.tell(Outcome(w.trial_id, outcome.status, dict(outcome.metrics),
                                    error=outcome.error, stopped_at=outcome.stopped_at))

    def promotable(self, trial_id: int) -> bool:
        if not self.inner.multi_fidelity:
            return False
        own = self.own.get(trial_id)
        return own is not None and self.inner.promotable(own)

    # -- state -----------------------------------------------------------------------------
    def _state(self) -> Dict[str, Any]:
        return {"inner": self.inner.state_dict(),
                "results": {k: [t, dict(m)] for k, (t, m) in self.results.items()},
                "running": [[t, i, k] for t, (i, k) in self.running.items()],
                "waiters": {k: [s.to_dict() for s in ws] for k, ws in self.waiters.items()},
                "alias": np.array(self.alias, dtype=np.int64),
                "answered": self.answered, "fallbacks": self.fallbacks}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        self.inner.load_state_dict(state["inner"])
        self.results = {str(k): (int(v[0]), {m: float(x) for m, x in v[1].items()})
                        for k, v in state["results"].items()}
        self.running = {int(t): (None if i is None else int(i), str(k))
                        for t, i, k in state["running"]}
        self.inflight = {k: t for t, (_, k) in self.running.items()}
        self.waiters = {str(k): [Suggestion.from_dict(d) for d in ws]
                        for k, ws in state["waiters"].items()}
        self.alias = [int(t) for t in np.asarray(state["alias"]).reshape(-1)]
        self.own = {t: i for i, t in enumerate(self.alias) if t >= 0}
        self.answered = int(state["answered"])
        self.fallbacks = int(state["fallbacks"])


def _trial(alias: int) -> int:
    return alias if alias >= 0 else -1 - alias


def _finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _renamed(outcome: Outcome, trial_id: int) -> Outcome:
    return Outcome(trial_id, outcome.status, outcome.metrics, outcome.curve, outcome.error,
                   outcome.stopped_at)
