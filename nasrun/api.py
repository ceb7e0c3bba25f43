"""The public Python API: any strategy on your own space and objective, in-process.

    from nasrun.api import optimize
    space = {"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
             "layers": {"type": "int", "low": 1, "high": 4}}
    trials = optimize(lambda config, budget: train(config, budget), space,
                      strategy="evolution", n_trials=50, metric="accuracy", mode="max")
    best = best_trial(trials, "accuracy", "max")

``objective_fn(config, budget)`` returns a dict of metrics or a float (stored under ``metric``);
``budget`` is ``None`` except for multi-fidelity strategies. An exception marks the trial
failed and the search goes on. Trials run one at a time, so promoted trials (``resume_from``)
start over: this loop keeps no model state between trials.
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Any, Callable, List, Mapping, Optional, Union

from .space import SearchSpace
from .strategies import FINISHED, WAIT, make_strategy
from .trial import Outcome, Suggestion


@dataclass(frozen=True)
class Trial:
    suggestion: Suggestion
    outcome: Outcome


def optimize(objective_fn: Callable[[Mapping[str, Any], Optional[float]], Any],
             space: Union[SearchSpace, Mapping[str, Mapping[str, Any]]],
             strategy: str = "evolution", n_trials: int = 100, seed: int = 0,
             metric: str = "objective", mode: str = "max", **options: Any) -> List[Trial]:
    """Run ``n_trials`` trials of ``strategy`` (a name in ``STRATEGIES``) and return them."""
    if not isinstance(space, SearchSpace):
        space = SearchSpace.from_dict(space)
    strat = make_strategy(strategy, space, seed=seed, metric=metric, mode=mode, **options)
    trials: List[Trial] = []
    while len(trials) < n_trials:
        s = strat.ask()
        if s is FINISHED:
            break
        if s is WAIT:  # cannot happen one trial at a time: every asked trial was told
            raise RuntimeError(f"{strategy} is waiting with no trial outstanding")
        try:
            value = objective_fn(dict(s.config), s.budget)
            metrics = dict(value) if isinstance(value, Mapping) else {metric: float(value)}
            outcome = Outcome(s.trial_id, "done", metrics)
        except Exception as e:  # noqa: BLE001 - a failing trial must not end the search
            outcome = Outcome.failure(s.trial_id, f"{e!r}\n{traceback.format_exc()}")
        strat.tell(outcome)
        trials.append(Trial(s, outcome))
    return trials


def best_trial(trials: List[Trial], metric: str = "objective", mode: str = "max"
               ) -> Optional[Trial]:
    """The best finished trial by ``metric`` (ties: the earliest), or None."""
    sign = 1.0 if mode == "max" else -1.0
    scored = [(sign * t.outcome.value(metric), t) for t in trials
              if t.outcome.value(metric) is not None]
    return max(scored, key=lambda p: (p[0], -p[1].suggestion.trial_id))[1] if scored else None
