"""Budget ladders shared by the successive-halving family (Hyperband, ASHA, BOHB).

An objective declares the budgets (fidelities) at which its result can differ
(:class:`Fidelities`): the NAS-Bench-201 table has 12 and 200 epochs, a train objective every
integer epoch from ``min_epochs`` to ``epochs``, a function objective what its spec's
``objective.fidelity`` says.

The rungs (:func:`rung_budgets`) start at ``min_budget`` and grow by ``eta``:
``min_budget * eta**k`` for ``k = 0 .. s_max - 1``, then ``max_budget`` (``s_max`` = the number
of factors of ``eta`` that fit between the two, so the last step is at least ``eta`` and less
than ``eta**2``). Each rung is then moved to the nearest declared fidelity (nearest on a log
scale, the lower one on a tie) and a rung that lands where the one below it did is dropped:
the objective would return the same value there, so training it would re-rank identical
numbers. The dropped rung's promotion still happens, for free: a promotion that spans ``m``
steps of the ladder keeps the best ``eta**-m`` (:func:`promotion_steps`), the selection the
full ladder would have made. With ``min_budget=12, max_budget=200, eta=3`` the ladder is 12, 36,
200; on the table's fidelities it is 12, 12, 200, so the rungs are 12 and 200 and the best 1/9
of rung 12 go to 200 (the former ladder 22.2, 66.7, 200 paid 44 epochs per promotion to 66.7 to
re-rank the same 12-epoch values).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Sequence, Tuple


@dataclass(frozen=True)
class Fidelities:
    """The budgets an objective can tell apart: every number in ``[low, high]``, every integer
    there (``integer``), or only ``values``."""

    low: float
    high: float
    values: Optional[Tuple[float, ...]] = None
    integer: bool = False

    @classmethod
    def of(cls, low: float, high: float, values: Optional[Sequence[float]] = None,
           integer: bool = False) -> "Fidelities":
        vals = None if values is None else tuple(sorted({float(v) for v in values}))
        return cls(float(low), float(high), vals, bool(integer))

    def snap(self, budget: float) -> float:
        """The declared fidelity nearest ``budget`` on a log scale (the lower one on a tie)."""
        x = min(max(float(budget), self.low), self.high)
        if self.values is not None:
            inside = [v for v in self.values if self.low <= v <= self.high] or list(self.values)
            return min(inside, key=lambda v: (abs(math.log(v / x)), v))
        if self.integer:
            lo = max(float(math.floor(x)), math.ceil(self.low))
            hi = min(float(math.ceil(x)), math.floor(self.high))
            return hi if hi * lo < x * x else lo
        return x

    def describe(self) -> str:
        if self.values is not None:
            return ", ".join(f"{v:g}" for v in self.values)
        if self.integer:
            return f"every integer from {self.low:g} to {self.high:g}"
        return f"any value from {self.low:g} to {self.high:g}"


def check_fidelity(opts: Mapping[str, Any]) -> None:
    lo, hi, eta = float(opts["min_budget"]), float(opts["max_budget"]), float(opts["eta"])
    if not (0 < lo <= hi):
        raise ValueError(f"need 0 < min_budget <= max_budget, got {lo} and {hi}")
    if eta <= 1:
        raise ValueError(f"eta must exceed 1, got {eta}")


def s_max(min_budget: float, max_budget: float, eta: float) -> int:
    """The number of factors of ``eta`` that fit between the budgets (a small tolerance for
    rounding)."""
    return int(math.floor(math.log(max_budget / min_budget) / math.log(eta) + 1e-9))


def ladder(min_budget: float, max_budget: float, eta: float) -> List[float]:
    """``min_budget * eta**k`` for ``k < s_max``, then ``max_budget``."""
    s = s_max(min_budget, max_budget, eta)
    return [float(min_budget) * float(eta) ** k for k in range(s)] + [float(max_budget)]


def snapped_ladder(min_budget: float, max_budget: float, eta: float,
                   fidelities: Optional[Fidelities] = None) -> List[float]:
    """The :func:`ladder` moved onto the declared ``fidelities`` (any value when None), with
    the rungs that land on the same fidelity repeated."""
    steps = ladder(min_budget, max_budget, eta)
    return [fidelities.snap(b) for b in steps] if fidelities is not None else steps


def rung_budgets(min_budget: float, max_budget: float, eta: float,
                 fidelities: Optional[Fidelities] = None) -> List[float]:
    """The rungs' budgets, lowest first: the :func:`snapped_ladder` without repeats."""
    out: List[float] = []
    for v in snapped_ladder(min_budget, max_budget, eta, fidelities):
        if not out or v > out[-1]:
            out.append(v)
    return out


def promotion_steps(min_budget: float, max_budget: float, eta: float,
                    fidelities: Optional[Fidelities] = None) -> List[int]:
    """Per rung but the top one, the steps of the ladder its promotions span (1 unless rungs
    were dropped): a promotion from it keeps the best ``eta**-steps``."""
    snapped = snapped_ladder(min_budget, max_budget, eta, fidelities)
    firsts = [i for i, v in enumerate(snapped) if i == 0 or v > snapped[i - 1]]
    return [b - a for a, b in zip(firsts, firsts[1:])]
