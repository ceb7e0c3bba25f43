"""Run a strategy against a tabular objective with simulated parallel workers and time.

Event-driven: every idle worker asks at once; a suggestion is scored immediately but its result
is told only when its simulated training time has elapsed (a heap of completion events). On
``WAIT`` the idle workers sleep until the next completion; ``FINISHED`` stops asking. The run
ends at the time budget (trials still running then do not count), after ``max_trials`` trials
have been started and finished, or when nothing is left to run.

The simulator is not strategy code: it measures rank 0's real compute time per ask and tell with
``time.perf_counter``.
"""
from __future__ import annotations

import heapq
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .objectives import NB201Objective
from .space import SearchSpace, builtin_params
from .strategies import FINISHED, WAIT, Strategy, make_strategy
from .trial import Outcome, Suggestion


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


NB201_FIDELITIES = {"min_budget": 12.0, "max_budget": 200.0}


def simulate_spec(strategy: str, options: Optional[Mapping[str, Any]] = None,
                  space: Optional[SearchSpace] = None, objective_path=None, workers: int = 8,
                  budget_seconds: Optional[float] = None, max_trials: Optional[int] = None,
                  seeds: Sequence[int] = (0,), metric: str = "valid_accuracy", mode: str = "max"
                  ) -> List[SimResult]:
    """What ``nasrun simulate`` runs: one simulated run per seed on the NAS-Bench-201 table.

    ``space`` defaults to the nb201 space; multi-fidelity strategies get the table's fidelities
    (12 and 200 epochs) as ``min_budget``/``max_budget`` unless ``options`` set them.
    """
    space = space or SearchSpace(builtin_params("nb201", {}))
    opts = dict(options or {})
    from .strategies import STRATEGIES
    if STRATEGIES[strategy].multi_fidelity:
        opts = {**NB201_FIDELITIES, **opts}
    out = []
    for seed in seeds:
        strat = make_strategy(strategy, space, seed=seed, metric=metric, mode=mode, **opts)
        out.append(simulate(strat, NB201Objective(objective_path), workers, budget_seconds,
                            max_trials, name=strategy))
    return out


def aggregate(results: Sequence[SimResult]) -> List[Dict[str, Any]]:
    """Per strategy: mean/std of final metric and test accuracy, trials, utilization, overhead."""
    groups: Dict[str, List[SimResult]] = {}
    for r in results:
        groups.setdefault(r.strategy, []).append(r)
    rows = []
    for name, rs in groups.items():
        v = [r.final[0] for r in rs]
        t = [r.final[1] for r in rs]
        rows.append({"strategy": name, "runs": len(rs),
                     "metric_mean": _mean(v), "metric_std": _std(v),
                     "test_mean": _mean(t), "test_std": _std(t),
                     "trials_mean": _mean([len(r.trials) for r in rs]),
                     "utilization": _mean([r.utilization for r in rs]),
                     "overhead_us": _mean([r.overhead_us for r in rs])})
    return rows


def _mean(xs):
    xs = [x for x in xs if not math.isnan(x)]
    return statistics.fmean(xs) if xs else math.nan


def _std(xs):
    xs = [x for x in xs if not math.isnan(x)]
    return statistics.stdev(xs) if len(xs) > 1 else 0.0


def format_table(results: Sequence[SimResult], title: str = "simulated search") -> str:
    """The aggregate table as text (rich's rendering when rich is installed)."""
    rows = aggregate(results)
    headers = ["strategy", "runs", "best valid", "its test", "trials", "utilization",
               "ask+tell us/trial"]
    cells = [[r["strategy"], str(r["runs"]), f"{r['metric_mean']:.2f} ± {r['metric_std']:.2f}",
              f"{r['test_mean']:.2f} ± {r['test_std']:.2f}", f"{r['trials_mean']:.0f}",
              f"{100 * r['utilization']:.1f}%", f"{r['overhead_us']:.0f}"] for r in rows]
    return render_table(title, headers, cells)


def render_table(title: str, headers: Sequence[str], cells: Sequence[Sequence[str]]) -> str:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h)
                  for i, h in enumerate(headers)]
        lines = [title, "  ".join(h.ljust(w) for h, w in zip(headers, widths))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
        return "\n".join(lines)
    table = Table(title=title)
    for h in headers:
        table.add_column(h, justify="left" if h == headers[0] else "right")
    for row in cells:
        table.add_row(*row)
    console = Console(width=140, record=True, force_terminal=False)
    with console.capture() as cap:
        console.print(table)
    return cap.get()
