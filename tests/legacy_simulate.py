"""The simulator's event loop as it was before the one-driver rewrite (git 102f994), kept only
to check that the new simulator reproduces its trial sequence; deleted right after."""
from __future__ import annotations

import heapq
import math
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from nasrun.strategies import FINISHED, WAIT, Strategy
from nasrun.trial import Outcome, Suggestion


@dataclass(frozen=True)
class SimTrial:
    suggestion: Suggestion
    outcome: Outcome
    worker: int
    start: float
    end: float


@dataclass
class SimResult:
    """One simulated run.

    trajectory: ``(time, trials finished, best metric so far, test accuracy of that best)`` after
    each finished trial that can be an incumbent (one run at the full budget).
    utilization: busy worker time / (workers x makespan).
    overhead_us: rank-0 compute time (ask + tell) per finished trial, microseconds.
    """

    strategy: str
    seed: int
    workers: int
    trials: List[SimTrial] = field(default_factory=list)
    trajectory: List[tuple] = field(default_factory=list)
    makespan: float = 0.0
    utilization: float = 0.0
    overhead_us: float = 0.0

    @property
    def final(self) -> tuple:
        """(best metric, its test accuracy) at the end; NaNs when nothing finished."""
        if not self.trajectory:
            return (math.nan, math.nan)
        return self.trajectory[-1][2], self.trajectory[-1][3]

    def best_at(self, t: float) -> float:
        """The best metric reached by simulated time ``t`` (NaN before the first)."""
        best = math.nan
        for time_, _, b, _ in self.trajectory:
            if time_ > t:
                break
            best = b
        return best

    def time_to_reach(self, value: float, sign: float = 1.0) -> float:
        """Simulated time when the best metric first reached ``value`` (``inf`` if never)."""
        for time_, _, b, _ in self.trajectory:
            if sign * b >= sign * value:
                return time_
        return math.inf

    def trials_to_reach(self, value: float, sign: float = 1.0) -> float:
        for _, n, b, _ in self.trajectory:
            if sign * b >= sign * value:
                return n
        return math.inf

    def summary(self) -> Dict[str, Any]:
        valid, test = self.final
        return {"strategy": self.strategy, "seed": self.seed, "workers": self.workers,
                "trials": len(self.trials), "final_metric": valid, "final_test": test,
                "makespan": self.makespan, "utilization": self.utilization,
                "overhead_us": self.overhead_us,
                "trajectory": [list(p) for p in self.trajectory]}


def simulate(strategy: Strategy, objective, workers: int, budget_seconds: Optional[float] = None,
             max_trials: Optional[int] = None, name: str = "", test_metric: str = "test_accuracy"
             ) -> SimResult:
    """Run ``strategy`` with ``workers`` simulated workers on ``objective``.

    ``objective.evaluate(suggestion) -> (Outcome, seconds)``. At least one of ``budget_seconds``
    and ``max_trials`` must be given (a strategy may never finish).
    """
    if budget_seconds is None and max_trials is None:
        raise ValueError("give budget_seconds, max_trials or both")
    full = strategy.opts.get("max_budget") if strategy.multi_fidelity else None
    sign = 1.0 if strategy.mode == "max" else -1.0
    res = SimResult(name or type(strategy).__name__, strategy.seed, workers)
    events: list = []  # (end, seq, worker, start, suggestion, outcome)
    idle = list(range(workers))
    now, seq, started, busy, overhead = 0.0, 0, 0, 0.0, 0.0
    finished = False
    best, best_test = None, math.nan
    while True:
        while idle and not finished and (max_trials is None or started < max_trials):
            t0 = time.perf_counter()
            s = strategy.ask()
            overhead += time.perf_counter() - t0
            if s is FINISHED:
                finished = True
                break
            if s is WAIT:
                break
            outcome, seconds = objective.evaluate(s)
            worker = idle.pop(0)
            heapq.heappush(events, (now + seconds, seq, worker, now, s, outcome))
            seq += 1
            started += 1
        if not events:
            break
        end, _, worker, start, s, outcome = heapq.heappop(events)
        if budget_seconds is not None and end > budget_seconds:
            busy += sum(min(e[0], budget_seconds) - e[3] for e in events) + budget_seconds - start
            now = budget_seconds
            break
        now = end
        busy += end - start
        idle.append(worker)
        t0 = time.perf_counter()
        strategy.tell(outcome)
        overhead += time.perf_counter() - t0
        res.trials.append(SimTrial(s, outcome, worker, start, end))
        v = outcome.value(strategy.metric)
        incumbent_budget = full is None or (s.budget is not None and s.budget >= full)
        if v is not None and incumbent_budget and (best is None or sign * v > sign * best):
            best, best_test = v, outcome.metrics.get(test_metric, math.nan)
        if best is not None:
            res.trajectory.append((now, len(res.trials), best, best_test))
    res.makespan = now
    res.utilization = busy / (workers * now) if now > 0 else 0.0
    res.overhead_us = 1e6 * overhead / max(1, len(res.trials))
    return res


