"""Learning-curve extrapolation (after Domhan et al. 2015): stop a trial that will not win.

After each epoch ``t >= grace_epochs`` the trial's *envelope* (its running maximum: the best
value so far after each epoch) is fitted, by least squares (Levenberg-Marquardt), with each
parametric family of :data:`FAMILIES` that has fewer parameters than there are points
(increasing, saturating curves of the epoch ``x``: pow3, exp3, log-power, Janoschek, MMF and
ilog2). Each fit predicts the envelope at the final epoch ``T`` as a normal distribution: its
prediction, with the fit's residual standard deviation (at least ``noise``) times
``sqrt(1 + k / n)`` (``k`` parameters fitted to ``n`` points: the usual widening of a prediction
interval), which gives the family's probability that the envelope ends above the best final value
of the finished trials. The trial stops when more than half of the families that fitted give a
probability below ``threshold`` (0.05, Domhan et al.'s). Nothing is stopped before ``min_trials``
trials have finished.

Why the envelope: the families are increasing (Domhan et al. constrain the extrapolation to be
so), a raw noisy curve is not, and a dip (a noisy epoch can lose tens of points) would count as
noise in the residual, widening every prediction until nothing is stopped. The envelope at ``T``
is never below the final value, so the probability of the envelope beating the best is an
upper bound of the final value's: the rule stays on the cautious side. Why the majority: an
unweighted mixture lets one family that extrapolates wildly (a prediction far above the others,
a probability near 1) keep every trial alive; the median family's answer does not depend on it
(peer implementations drop such fits too: NNI's curve-fitting assessor, Domhan et al.'s sanity
check of the prediction).

Cost on rank 0: nothing is fitted while the envelope already reaches the best (it cannot end
below it), and the families are fitted one at a time only until the majority is decided.

Deterministic (fixed starting points, no sampling), so the state is only the best value and the
number of finished trials.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

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
#: scaled to [0, 1] (see CurveStopper._probabilities); cheapest fits first (on the recorded digits
#: curves: ilog2 0.4 ms, exp3, pow3, log-power 0.8-1 ms, Janoschek and MMF 2 ms, mostly running
#: out of evaluations), so that the vote is usually decided before the costly ones
FAMILIES: Dict[str, Family] = {
    "ilog2": (_ilog2, (1.0, -0.7)),
    "exp3": (_exp3, (1.0, 0.0, -0.7)),
    "pow3": (_pow3, (1.0, 0.0, -0.7)),
    "log_power": (_log_power, (1.0, 0.0, 0.0)),
    "janoschek": (_janoschek, (1.0, 0.0, -0.7, 0.0)),
    "mmf": (_mmf, (1.0, 0.0, -0.7, 0.0)),
}


def _residuals(p: Any, fn: Callable[..., Any], x: Any, y: Any) -> Any:
    return fn(x, *p) - y


def envelope(values: Sequence[Optional[float]]) -> Tuple[Any, Any]:
    """The running maximum of a curve at its epochs with a finite value (epochs from 1)."""
    x = np.array([i + 1.0 for i, v in enumerate(values) if v is not None])
    y = np.array([v for v in values if v is not None], dtype=float)
    return x, np.maximum.accumulate(y) if len(y) else y


class CurveStopper(Stopper):
    options: Dict[str, Any] = {"threshold": 0.05, "grace_epochs": 3, "min_trials": 3,
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
        x, env = envelope(values)
        if len(env) < 3 or env[-1] >= self.best:  # it has reached the best: it cannot end below
            return False
        threshold = float(self.opts["threshold"])
        below = above = 0
        left = len(FAMILIES)
        for p in self._probabilities(x, env, self.best):
            left -= 1
            if p is None:
                continue
            below, above = below + (p < threshold), above + (p >= threshold)
            if below > above + left or above >= below + left:  # the rest cannot change the vote
                break
        return below > above

    def probabilities(self, values: Sequence[Optional[float]], best: float) -> List[float]:
        """Every fitted family's probability that the envelope of ``values`` ends above ``best``
        at the final epoch (all families fitted: what ``should_stop`` decides from)."""
        x, env = envelope(clean(values))
        if len(env) < 3:
            return []
        return [p for p in self._probabilities(x, env, best) if p is not None]

    def _probabilities(self, x: Any, y: Any, best: float) -> Iterator[Optional[float]]:
        """Per family, in :data:`FAMILIES` order, lazily: its probability that the curve ``y``
        (at epochs ``x``) ends above ``best``, or None when the family was not fitted."""
        from scipy.optimize import leastsq
        lo, span = float(y.min()), float(y.max() - y.min())
        scale = span if span > 0 else 1.0
        ys = (y - lo) / scale  # fit in [0, 1]: one set of starting points fits every metric
        horizon = float(self.epochs)
        noise = float(self.opts["noise"])
        for fn, p0 in FAMILIES.values():
            k = len(p0)
            if len(y) <= k:
                yield None
                continue
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                try:  # MINPACK directly: least_squares' wrapper costs 10x more per evaluation
                    params, _, info, _, ier = leastsq(_residuals, np.asarray(p0, dtype=float),
                                                      args=(fn, x, ys), maxfev=50 * (k + 1),
                                                      full_output=True)
                except (ValueError, FloatingPointError, TypeError):
                    yield None
                    continue
                pred = float(fn(np.array(horizon), *params))
            resid = np.asarray(info["fvec"])
            if ier not in (1, 2, 3, 4) or not (math.isfinite(pred) and np.all(np.isfinite(resid))):
                yield None
                continue
            sd = max(scale * math.sqrt(float(resid @ resid) / (len(y) - k)), noise) \
                * math.sqrt(1.0 + k / len(y))
            mu = lo + scale * pred
            yield 0.5 * math.erfc((best - mu) / (sd * math.sqrt(2.0)))

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
