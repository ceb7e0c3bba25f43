"""Budget ladders shared by the successive-halving family (Hyperband, ASHA, BOHB)."""
from __future__ import annotations

import math
from typing import List, Mapping


def check_fidelity(opts: Mapping) -> None:
    lo, hi, eta = float(opts["min_budget"]), float(opts["max_budget"]), float(opts["eta"])
    if not (0 < lo <= hi):
        raise ValueError(f"need 0 < min_budget <= max_budget, got {lo} and {hi}")
    if eta <= 1:
        raise ValueError(f"eta must exceed 1, got {eta}")


def s_max(min_budget: float, max_budget: float, eta: float) -> int:
    """The number of halvings that fit between the budgets (a small tolerance for rounding)."""
    return int(math.floor(math.log(max_budget / min_budget) / math.log(eta) + 1e-9))


def rung_budgets(min_budget: float, max_budget: float, eta: float) -> List[float]:
    """Budgets of rungs 0..s_max: ``max_budget * eta**(k - s_max)``, ending at ``max_budget``."""
    s = s_max(min_budget, max_budget, eta)
    return [float(max_budget) * float(eta) ** (k - s) for k in range(s + 1)]
