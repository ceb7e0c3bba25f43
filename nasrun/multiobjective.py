"""Several objectives and constraints: Pareto dominance, non-dominated sorting, crowding distance,
scalarization and feasibility. Pure functions on plain numbers (no MPI, files or clocks).

Points are *oriented*: every coordinate is "higher is better" (a minimised metric is negated by
:func:`oriented`), so one dominance rule serves every mix of directions.

* :func:`oriented` - an outcome's objective values as a tuple, or ``None`` (failed, missing,
  not finite);
* :func:`feasible` - whether an outcome meets every constraint (a missing value violates it);
* :func:`dominates`, :func:`non_dominated_sort` (NSGA-II's fronts, front 0 = the Pareto front),
  :func:`pareto_front`, :func:`crowding_distance`;
* :func:`scalarize` - a weighted sum of oriented values;
* :func:`pareto_trials` - the feasible, non-dominated outcomes of a list.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

Point = Tuple[float, ...]


@dataclass(frozen=True)
class Objective:
    """One objective: ``metric`` in an outcome's metrics, ``mode`` "max" or "min", and a
    ``weight`` used only when objectives are scalarized."""

    metric: str
    mode: str = "max"
    weight: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in ("max", "min"):
            raise ValueError(f"objective {self.metric!r}: mode must be 'max' or 'min', not {self.mode!r}")


@dataclass(frozen=True)
class Constraint:
    """``min <= metrics[metric] <= max`` (either bound may be None)."""

    metric: str
    min: Optional[float] = None
    max: Optional[float] = None

    def __post_init__(self) -> None:
        if self.min is None and self.max is None:
            raise ValueError(f"constraint on {self.metric!r} needs 'min' and/or 'max'")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"constraint on {self.metric!r}: min ({self.min}) exceeds max ({self.max})")

    def holds(self, metrics: Mapping[str, float]) -> bool:
        v = metrics.get(self.metric)
        if v is None:
            return False
        v = float(v)
        if not math.isfinite(v):
            return False
        return (self.min is None or v >= self.min) and (self.max is None or v <= self.max)

    def describe(self) -> str:
        if self.min is not None and self.max is not None:
            return f"{self.min:g} <= {self.metric} <= {self.max:g}"
        return f"{self.metric} >= {self.min:g}" if self.min is not None else f"{self.metric} <= {self.max:g}"


def _value(outcome, metric: str) -> Optional[float]:
    if hasattr(outcome, "value"):
        return outcome.value(metric)
    v = outcome.get(metric)  # a plain metrics mapping
    return None if v is None or not math.isfinite(float(v)) else float(v)


def oriented(outcome, objectives: Sequence[Objective]) -> Optional[Point]:
    """The outcome's (or metrics mapping's) values, negated for "min" objectives; None when any is
    missing, not finite, or the trial failed."""
    out = []
    for o in objectives:
        v = _value(outcome, o.metric)
        if v is None:
            return None
        out.append(v if o.mode == "max" else -v)
    return tuple(out)


def feasible(outcome, constraints: Sequence[Constraint]) -> bool:
    metrics = outcome.metrics if hasattr(outcome, "metrics") else outcome
    if hasattr(outcome, "ok") and not outcome.ok:
        return False
    return all(c.holds(metrics) for c in constraints)


def dominates(a: Point, b: Point) -> bool:
    """``a`` is at least as good as ``b`` everywhere and strictly better somewhere."""
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


def non_dominated_sort(points: Sequence[Point]) -> List[List[int]]:
    """Indices of ``points`` grouped into fronts (front 0 is non-dominated, front 1 is
    non-dominated once front 0 is removed, ...); indices ascend within a front."""
    n = len(points)
    dominated_by_me: List[List[int]] = [[] for _ in range(n)]
    count = [0] * n
    for i in range(n):
        for j in range(i + 1, n):
            if dominates(points[i], points[j]):
                dominated_by_me[i].append(j)
                count[j] += 1
            elif dominates(points[j], points[i]):
                dominated_by_me[j].append(i)
                count[i] += 1
    fronts: List[List[int]] = []
    current = [i for i in range(n) if count[i] == 0]
    while current:
        fronts.append(sorted(current))
        nxt = []
        for i in current:
            for j in dominated_by_me[i]:
                count[j] -= 1
                if count[j] == 0:
                    nxt.append(j)
        current = nxt
    return fronts


def pareto_front(points: Sequence[Point]) -> List[int]:
    """Indices of the non-dominated points (duplicates of a front point are all on it)."""
    return non_dominated_sort(points)[0] if points else []


def crowding_distance(points: Sequence[Point], front: Sequence[int]) -> Dict[int, float]:
    """NSGA-II crowding distance of each index of ``front`` among the points of that front:
    the boundary points of every objective get infinity, the others the sum over objectives of
    the normalised gap between their two neighbours."""
    dist = {i: 0.0 for i in front}
    if len(front) <= 2:
        return {i: math.inf for i in front}
    for k in range(len(points[front[0]])):
        order = sorted(front, key=lambda i: (points[i][k], i))
        lo, hi = points[order[0]][k], points[order[-1]][k]
        dist[order[0]] = dist[order[-1]] = math.inf
        if hi == lo:
            continue
        for a, i, b in zip(order, order[1:], order[2:]):
            dist[i] += (points[b][k] - points[a][k]) / (hi - lo)
    return dist


def best_by_rank_and_crowding(points: Sequence[Point]) -> int:
    """The index NSGA-II's crowded comparison prefers: lowest front, then largest crowding
    distance, then the lowest index."""
    front = pareto_front(points)
    dist = crowding_distance(points, front)
    return min(front, key=lambda i: (-dist[i], i))


def scalarize(point: Point, weights: Sequence[float]) -> float:
    """Weighted sum of oriented values (higher is better)."""
    return float(sum(w * v for w, v in zip(weights, point)))


def pareto_trials(outcomes: Iterable, objectives: Sequence[Objective],
                  constraints: Sequence[Constraint] = ()) -> List:
    """The feasible outcomes that no other feasible outcome dominates, in input order."""
    scored = [(o, oriented(o, objectives)) for o in outcomes if feasible(o, constraints)]
    cands = [(o, p) for o, p in scored if p is not None]
    front = pareto_front([p for _, p in cands])
    return [cands[i][0] for i in front]


class Scorer:
    """One number per outcome, higher is better, ``None`` for no information: the single
    definition every strategy, the driver and every reader use.

    An outcome that failed, misses a value, or violates a constraint scores None. With several
    objectives and ``scalarize`` the score is the weighted sum of the oriented values; otherwise
    it is the first objective's (oriented) value and :meth:`point` gives all of them (for
    Pareto ranking).
    """

    def __init__(self, objectives: Sequence[Objective], constraints: Sequence[Constraint] = (),
                 scalarize: bool = False):
        self.objectives = list(objectives)
        self.constraints = list(constraints)
        self.scalarize = bool(scalarize)
        self.weights = [o.weight for o in self.objectives]
        first = self.objectives[0]
        self.metric, self.sign = first.metric, (1.0 if first.mode == "max" else -1.0)

    def feasible(self, outcome) -> bool:
        return feasible(outcome, self.constraints)

    def score(self, outcome) -> Optional[float]:
        if self.constraints and not feasible(outcome, self.constraints):
            return None
        if self.scalarize:
            p = oriented(outcome, self.objectives)
            return None if p is None else scalarize(p, self.weights)
        v = _value(outcome, self.metric) if getattr(outcome, "ok", True) else None
        return None if v is None else self.sign * v

    def point(self, outcome) -> Optional[Point]:
        if self.constraints and not feasible(outcome, self.constraints):
            return None
        return oriented(outcome, self.objectives)

    def score_matrix(self, names: Sequence[str], values, ok) -> "Any":
        """Scores of many trials at once: ``values`` (n, k) float metrics named ``names``, ``ok``
        a boolean array (status done); NaN where a trial scores None."""
        import numpy as np
        values = np.asarray(values, dtype=float)
        n = values.shape[0]
        col = {name: j for j, name in enumerate(names)}

        def column(metric: str):
            j = col.get(metric)
            return values[:, j] if j is not None else np.full(n, np.nan)

        good = np.asarray(ok, dtype=bool).copy()
        for c in self.constraints:
            v = column(c.metric)
            good &= np.isfinite(v)
            if c.min is not None:
                good &= v >= c.min
            if c.max is not None:
                good &= v <= c.max
        if self.scalarize:
            s = np.zeros(n)
            for o in self.objectives:
                v = column(o.metric)
                s = s + o.weight * (v if o.mode == "max" else -v)
        else:
            s = self.sign * column(self.metric)
        s = np.where(good & np.isfinite(s), s, np.nan)
        return s
