"""Learning-curve extrapolation (after Domhan et al. 2015): stop a trial that will not win.

After each epoch ``t >= grace_epochs`` the curve so far is fitted, by least squares (Levenberg-Marquardt),
with each parametric family of :data:`FAMILIES` that has fewer parameters than there are points
(saturating curves of the epoch ``x``: pow3, exp3, log-power, Janoschek, MMF and ilog2). Each
fit predicts the value at the final epoch ``T`` as a normal distribution: its prediction, with
the fit's residual standard deviation (at least ``noise``) times ``sqrt(1 + k / n)`` (``k``
parameters fitted to ``n`` points: the usual widening of a prediction interval). The ensemble
is the equal mixture of the families that fitted; the trial stops when its probability of
beating the best final value of the finished trials falls below ``threshold``. Nothing is
stopped before ``min_trials`` trials have finished.

Deterministic (fixed starting points, no sampling), so the state is only the best value and the
number of finished trials.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .base import Curve, Stopper, clean

Family = Tuple[Callable[..., Any], Sequence[float]]


# every family is increasing and saturating in x; the parameters that must be positive enter
# through exp() so that an unbounded Levenberg-Marquardt fit (MINPACK: fast) keeps them so
def _pow3(x: Any, c: float, la: float, lalpha: float) -> Any:
    return c - np.exp(la) * np.power(x, -np.exp(lalpha))


def _exp3(x: Any, c: float, la: float, lb: float) -> Any:
    return c - np.exp(la) * np.exp(-np.exp(lb) * x)


def _log_power(x: Any, a: float, b: float, lc: float) -> Any:
    return a / (1.0 + np.power(x / np.exp(b), -np.exp(lc)))


def _janoschek(x: Any, alpha: float, beta: float, lk: float, ld: float) -> Any:
    return alpha - (alpha - beta) * np.exp(-np.exp(lk) * np.power(x, np.exp(ld)))


def _mmf(x: Any, alpha: float, beta: float, lk: float, ld: float) -> Any:
    return alpha - (alpha - beta) / (1.0 + np.power(np.exp(lk) * x, np.exp(ld)))


def _ilog2(x: Any, c: float, la: float) -> Any:
    return c - np.exp(la) / np.log(x + 1.0)


#: name -> (function of x and parameters, starting point); starting points are for values
#: scaled to [0, 1] (see CurveStopper._predict)
FAMILIES: Dict[str, Family] = {
    "pow3": (_pow3, (1.0, 0.0, -0.7)),
    "exp3": (_exp3, (1.0, 0.0, -0.7)),
    "log_power": (_log_power, (1.0, 0.0, 0.0)),
    "janoschek": (_janoschek, (1.0, 0.0, -0.7, 0.0)),
    "mmf": (_mmf, (1.0, 0.0, -0.7, 0.0)),
    "ilog2": (_ilog2, (1.0, -0.7)),
}


def _residuals(p: Any, fn: Callable[..., Any], x: Any, y: Any) -> Any:
    return fn(x, *p) - y


class CurveStopper(Stopper):
    options: Dict[str, Any] = {"threshold": 0.1, "grace_epochs": 3, "min_trials": 3,
                               "noise": 0.01}

    @classmethod
    def option_problem(cls, name: str, value: Any) -> Optional[str]:
        if name == "threshold" and not 0.0 < value < 1.0:
            return f"expected a probability between 0 and 1 (exclusive), got {value}"
        if name == "grace_epochs" and value < 3:
            return f"expected an integer >= 3 (a curve needs 3 points to be fitted), got {value}"
        if name == "min_trials" and value < 1:
            return f"expected an integer >= 1, got {value}"
        if name == "noise" and value < 0:
            return f"expected a number >= 0, got {value}"
        return None

    def __init__(self, epochs: int, **options: Any) -> None:
        super().__init__(epochs, **options)
        self.best: Optional[float] = None  # the best final value of the finished trials
        self.count = 0  # finished trials (not failed)

    def should_stop(self, trial_id: int, curve: Curve) -> bool:
        values = clean(curve)
        t = len(values)
        if t < int(self.opts["grace_epochs"]) or t >= self.epochs or self.best is None \
                or self.count < int(self.opts["min_trials"]):
            return False
        p = self.probability(values, self.best)
        return p is not None and p < float(self.opts["threshold"])

    def probability(self, values: List[Optional[float]], best: float) -> Optional[float]:
        """The ensemble's probability that the curve ends above ``best`` at the final epoch
        (None when no family could be fitted)."""
        preds = self._predict(values)
        if not preds:
            return None
        probs = [0.5 * math.erfc((best - mu) / (sd * math.sqrt(2.0))) for mu, sd in preds]
        return float(np.mean(probs))

    def _predict(self, values: List[Optional[float]]) -> List[Tuple[float, float]]:
        """(mean, standard deviation) at the final epoch of every family that fitted."""
        from scipy.optimize import leastsq
        x = np.array([i + 1.0 for i, v in enumerate(values) if v is not None])
        y = np.array([v for v in values if v is not None])
        if len(y) < 3:
            return []
        lo, span = float(y.min()), float(y.max() - y.min())
        scale = span if span > 0 else 1.0
        ys = (y - lo) / scale  # fit in [0, 1]: one set of starting points fits every metric
        horizon = float(self.epochs)
        out: List[Tuple[float, float]] = []
        for fn, p0 in FAMILIES.values():
            k = len(p0)
            if len(y) <= k:
                continue
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                try:  # MINPACK directly: least_squares' wrapper costs 10x more per evaluation
                    params, _, info, _, ier = leastsq(_residuals, np.asarray(p0, dtype=float),
                                                      args=(fn, x, ys), maxfev=50 * (k + 1),
                                                      full_output=True)
                except (ValueError, FloatingPointError, TypeError):
                    continue
                pred = float(fn(np.array(horizon), *params))
            resid = np.asarray(info["fvec"])
            if ier not in (1, 2, 3, 4) or not (math.isfinite(pred) and np.all(np.isfinite(resid))):
                continue
            sd = math.sqrt(float(resid @ resid) / (len(y) - k))
            out.append((lo + scale * pred,
                        max(scale * sd, float(self.opts["noise"])) * math.sqrt(1.0 + k / len(y))))
        return out

    def finished(self, trial_id: int, curve: Optional[Curve], stopped: bool = False) -> None:
        values = [v for v in clean(curve) if v is not None] if curve is not None else []
        if not values:
            return
        self.count += 1
        last = clean(curve)[-1]
        if last is not None and (self.best is None or last > self.best):
            self.best = last

    def state_dict(self) -> Dict[str, Any]:
        return {"best": self.best, "count": self.count}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best = None if state["best"] is None else float(state["best"])
        self.count = int(state["count"])
