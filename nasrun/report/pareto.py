"""The Pareto front of a set of points (pure; numpy only)."""
from __future__ import annotations

from typing import List, Sequence

import numpy as np


def pareto_front(points: Sequence[Sequence[float]], directions: Sequence[str]) -> List[int]:
    """Indices (ascending) of the points that no other point dominates.

    ``directions`` has one ``"max"`` or ``"min"`` per coordinate. A point dominates another when
    it is at least as good in every coordinate and strictly better in one, so equal points are
    all on the front. Points with a NaN coordinate are never on the front and dominate nothing.
    """
    if any(d not in ("max", "min") for d in directions):
        raise ValueError(f"directions must be 'max' or 'min', got {list(directions)}")
    p = np.asarray(points, dtype=np.float64).reshape(len(points), len(directions))
    if len(p) == 0:
        return []
    p = p * np.where(np.asarray(directions) == "max", 1.0, -1.0)  # everything maximised
    ok = ~np.isnan(p).any(axis=1)
    q = p[ok]
    front = []
    for i in np.flatnonzero(ok):
        dominated = ((q >= p[i]).all(axis=1) & (q > p[i]).any(axis=1)).any()
        if not dominated:
            front.append(int(i))
    return front
