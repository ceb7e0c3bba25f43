"""The bookkeeping shared by the single-fidelity model-based strategies (gp, smac, tpe).

Observations are the successful results in telling order, as ``space.to_vector`` rows (NaN for
an inactive parameter) with their scores (higher is better); failed or infeasible trials are not
observations. Every configuration handed out is remembered (``seen``) and never handed out
again, so pending configurations are never re-proposed.

An ask is random while fewer than ``n_initial`` configurations have been handed out (the
initial design counts asks, as SMAC3's and Ax's do, so with many groups the model takes over
after ``n_initial`` asks instead of waiting for ``n_initial`` results while every idle group gets
another random configuration) or fewer than two observations exist, with probability
``random_fraction`` afterwards, and whenever the model has nothing to offer; otherwise the
subclass's :meth:`ModelBased._propose` chooses. The model sees a bounded *window* of the
observations: the best ``window // 2`` and the latest others up to ``window`` (:meth:`window`),
so one ask costs the same at 5,000 observations as at 500.

Models are never pickled: a subclass keeps in its state only plain data from which it refits the
same model (the number of observations of the last fit, a seed, kernel hyperparameters), and
caches the fitted model in memory.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Set, Tuple, Union

import numpy as np
from scipy.stats import norm

from ..space import SearchSpace
from ..trial import AskStatus, Outcome, Suggestion
from .acquisition import random_unseen
from .base import Strategy
from .kde_model import config_key, stack

Config = Dict[str, Any]


def gaussian_ranks(y: np.ndarray) -> np.ndarray:
    """Scores replaced by normal quantiles of their ranks (ties share the mean rank): a monotone
    transform that a surrogate with Gaussian noise fits far better than raw scores with a long
    tail of failed-looking configurations (NAS-Bench-201's 10% accuracies)."""
    from scipy.stats import rankdata
    return np.asarray(norm.ppf((rankdata(y) - 0.5) / len(y)))


def power_transform(y: np.ndarray) -> np.ndarray:
    """Scores standardised, then Yeo-Johnson transformed towards a normal distribution (lambda
    by maximum likelihood; scikit-learn's ``PowerTransformer``) and standardised again: the
    output warping of HEBO (Cowen-Rivers et al., JAIR 2022). Unlike ranks it keeps how far
    apart scores are, which a flat landscape with a few peaks needs (ranks turn the noise-level
    differences of the flat part into structure); unlike plain standardisation it tames a long
    tail. Constant scores give zeros; a transform that fails numerically falls back to the
    standardised scores."""
    y = np.asarray(y, dtype=float)
    sd = float(np.std(y))
    if len(y) < 2 or sd == 0.0:
        return np.zeros_like(y)
    z = (y - float(np.mean(y))) / sd
    from sklearn.preprocessing import PowerTransformer
    with np.errstate(all="ignore"):
        try:
            out = PowerTransformer(method="yeo-johnson").fit_transform(z[:, None])[:, 0]
        except (ValueError, FloatingPointError):
            return z
    return np.asarray(out) if np.all(np.isfinite(out)) and np.std(out) > 0 else z


class ModelBased(Strategy):
    options: Dict[str, Any] = {"n_initial": 10, "random_fraction": 0.1, "window": 256}

    def __init__(self, space: SearchSpace, seed: int = 0, metric: str = "valid_accuracy",
                 mode: str = "max", **options: Any):
        super().__init__(space, seed, metric, mode, **options)
        if int(self.opts["n_initial"]) < 1:
            raise ValueError("n_initial must be at least 1")
        if not 0.0 <= float(self.opts["random_fraction"]) <= 1.0:
            raise ValueError("random_fraction must be between 0 and 1")
        if int(self.opts["window"]) < 4:
            raise ValueError("window must be at least 4")
        self.X: List[np.ndarray] = []
        self.y: List[float] = []
        self.configs: List[Config] = []
        self.seen: Set[str] = set()

    # -- what subclasses implement ---------------------------------------------------------
    def _propose(self) -> Optional[Config]:
        """A configuration from the model (not in ``self.seen``), or None for a random one."""
        raise NotImplementedError

    def _model_state(self) -> Dict[str, Any]:
        return {}

    def _load_model_state(self, state: Mapping[str, Any]) -> None:
        pass

    # -- ask / tell --------------------------------------------------------------------------
    def ask(self) -> Union[Suggestion, AskStatus]:
        config: Optional[Config] = None
        origin = "random"
        if len(self.seen) >= int(self.opts["n_initial"]) and len(self.y) >= 2 \
                and self.rng.random() >= float(self.opts["random_fraction"]):
            config = self._propose()
            origin = "model"
        if config is None:
            config, origin = random_unseen(self.space, self.rng, self.seen), "random"
        self.seen.add(config_key(config))
        return self._new(config, origin=origin)

    def tell(self, outcome: Outcome) -> None:
        s = self._take(outcome)
        score = self.score(outcome)
        if score is None:
            return
        self.X.append(self.space.to_vector(s.config))
        self.y.append(float(score))
        self.configs.append(dict(s.config))

    # -- helpers for subclasses --------------------------------------------------------------
    def window(self, n: Optional[int] = None,
               size: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
        """(vectors, scores) of the model's window over the first ``n`` observations (all by
        default): the best ``size // 2`` and the latest others, up to ``size`` rows (option
        ``window`` by default), in telling order."""
        n = len(self.y) if n is None else n
        size = int(self.opts["window"]) if size is None else size
        y = np.array(self.y[:n], dtype=float)
        if n <= size:
            keep = np.arange(n)
        else:
            best = np.argsort(-y, kind="stable")[: size // 2]
            rest = np.setdiff1d(np.arange(n), best)[-(size - len(best)):]
            keep = np.sort(np.concatenate([best, rest]))
        return stack([self.X[int(i)] for i in keep]), y[keep]

    def pending_vectors(self) -> np.ndarray:
        """The configurations asked and not yet told, as vectors (ask order)."""
        rows = [self.space.to_vector(s.config) for s in self.pending.values()]
        return np.array(rows, dtype=float).reshape(len(rows), len(self.space))

    def incumbents(self, k: int) -> List[Config]:
        """The ``k`` best observed configurations (best first)."""
        order = np.argsort(-np.array(self.y), kind="stable")[:k]
        return [dict(self.configs[int(i)]) for i in order]

    # -- state -------------------------------------------------------------------------------
    def _state(self) -> Dict[str, Any]:
        return {"X": np.array(self.X, dtype=float).reshape(len(self.y), len(self.space)),
                "y": np.array(self.y, dtype=float), "configs": [dict(c) for c in self.configs],
                "seen": sorted(self.seen),
                "model": self._model_state()}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        self.X = [np.array(r, dtype=float) for r in np.asarray(state["X"], dtype=float)]
        self.y = [float(v) for v in np.asarray(state["y"], dtype=float)]
        self.configs = [dict(c) for c in state["configs"]]
        self.seen = set(state["seen"])
        self._load_model_state(state["model"])
