"""The median stopping rule (Golovin et al. 2017, Google Vizier).

Stop a trial after epoch ``t`` when its best value so far is worse than the median, over the
trials that ran to the end, of their values at epoch ``t`` (``reference: value``, the default, as
Optuna's ``MedianPruner``), or of their running averages at ``t`` (``reference: average``: the mean
of their values over epochs 1..t, Golovin et al.'s rule and Ray Tune's ``MedianStoppingRule``; a
rising curve's value at ``t`` is above its running average, so that rule stops less).
Nothing is stopped before ``grace_epochs`` epochs, nor before ``min_trials`` trials (3, Ray Tune's
default) have run to the end; a trial that a stopper ended early is not a reference (its curve is
a bad one by construction: it would pull the median down), a failed one is no information.
The defaults were chosen among ``reference`` average/value and ``min_trials`` 3/5 on digits
searches with seeds 10-19 (``bench/stoppers_digits.py``), not on the seeds the README reports.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

import numpy as np

from .base import Curve, Stopper, clean


class MedianStopper(Stopper):
    options: Dict[str, Any] = {"grace_epochs": 1, "min_trials": 3, "reference": "value"}

    @classmethod
    def option_problem(cls, name: str, value: Any) -> Optional[str]:
        if name in ("grace_epochs", "min_trials") and value < 1:
            return f"expected an integer >= 1, got {value}"
        if name == "reference" and value not in ("average", "value"):
            return f"expected 'average' (running averages) or 'value' (values at the epoch), got {value!r}"
        return None

    def __init__(self, epochs: int, **options: Any) -> None:
        super().__init__(epochs, **options)
        # trial id -> running averages of its values (None where no finite value yet), or its
        # values with reference: value
        self.references: Dict[int, List[Optional[float]]] = {}

    def should_stop(self, trial_id: int, curve: Curve) -> bool:
        values = clean(curve)
        t = len(values)
        if t < int(self.opts["grace_epochs"]) or t >= self.epochs:
            return False
        seen = [v for v in values if v is not None]
        if not seen:
            return False
        refs: List[float] = []
        for r in self.references.values():
            v = r[t - 1] if len(r) >= t else None
            if v is not None:
                refs.append(v)
        if len(refs) < int(self.opts["min_trials"]):
            return False
        return max(seen) < float(np.median(refs))

    def finished(self, trial_id: int, curve: Optional[Curve], stopped: bool = False) -> None:
        if curve is None or stopped:
            return
        out: List[Optional[float]] = []
        total, n = 0.0, 0
        for v in clean(curve):
            if v is not None:
                total, n = total + v, n + 1
            out.append(v if self.opts["reference"] == "value" else total / n if n else None)
        if n:  # a curve without a finite value is no information
            self.references[int(trial_id)] = out

    def state_dict(self) -> Dict[str, Any]:
        return {"references": [[tid, list(r)] for tid, r in self.references.items()]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.references = {int(tid): [None if v is None else float(v) for v in r]
                           for tid, r in state["references"]}
