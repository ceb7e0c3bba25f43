"""The TPE model (BOHB's and the standalone ``tpe`` strategy's): product-kernel density
estimates of good and bad configurations.

Works on ``space.to_vector`` encodings ([0, 1] per parameter, NaN when inactive):

* categorical dimensions use an Aitchison-Aitken kernel over the choices plus one extra
  category, "inactive": ``1 - bw`` for the same category, ``bw / (k_total - 1)`` otherwise;
* numeric dimensions use a Gaussian kernel; when exactly one of the two points is inactive the
  factor is ``INACTIVE_MISMATCH``, when both are it is 1 (activity then works like a category).

Bandwidths follow the normal reference rule ``1.06 * std * n**(-1/(d+4))``, at least
``min_bandwidth`` (categoricals at most ``(k_total-1)/k_total``). The proposal samples around a
random good point with the numeric bandwidths widened by ``bandwidth_factor``, and keeps the
candidate with the largest ``l(x) / g(x)``.

With ``prior_weight > 0`` (the standalone ``tpe``; Bergstra et al. 2011, Hyperopt and Optuna do
the same) each estimate is a mixture of its kernels and a uniform prior of that weight, a
candidate is drawn from the prior with probability ``weight / (n + weight)``, and numeric
bandwidths are at least ``1 / min(100, n + 1)`` (Optuna's "magic clip"): without them a tight
cluster of good points makes both the samples and the density ratio collapse onto it. BOHB
keeps its published model (no prior: its random fraction explores).
"""
from __future__ import annotations

import json
from typing import Any, Container, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..space import SearchSpace

INACTIVE_MISMATCH = 1e-2


def categories(space: SearchSpace) -> np.ndarray:
    """Per dimension: the number of choices of a categorical, 0 for a numeric parameter."""
    return np.array([p.cardinality if p.kind == "categorical" else 0 for p in space], dtype=int)


def _codes(X: np.ndarray, cats: np.ndarray) -> np.ndarray:
    """Categorical columns as choice indices, inactive (NaN) as index k."""
    C = np.zeros(X.shape, dtype=int)
    for j in np.flatnonzero(cats):
        k = cats[j]
        col = X[:, j]
        index = np.minimum((np.nan_to_num(col) * k).astype(int), k - 1)
        C[:, j] = np.where(np.isnan(col), k, index)
    return C


class KDE:
    """A product-kernel density estimate over encoded configurations (rows of ``X``)."""

    def __init__(self, X: np.ndarray, cats: np.ndarray, min_bandwidth: float,
                 prior_weight: float = 0.0):
        self.X, self.cats = X, cats
        self.C = _codes(X, cats)
        self.prior_weight = prior_weight
        n, d = X.shape
        factor = 1.06 * n ** (-1.0 / (d + 4))
        if prior_weight > 0:  # Optuna's "magic clip": numeric bandwidths >= 1 / min(100, n + 1)
            min_bandwidth = max(min_bandwidth, 1.0 / min(100, n + 1))
        bw = np.empty(d)
        for j in range(d):
            active = X[~np.isnan(X[:, j]), j]
            std = float(np.std(active, ddof=1)) if len(active) > 1 else 0.5
            bw[j] = max(min_bandwidth, factor * std)
            if cats[j]:
                total = cats[j] + 1
                bw[j] = min(bw[j], (total - 1) / total)
        self.bw = bw

    def log_pdf(self, Q: np.ndarray) -> np.ndarray:
        """Log density at each row of ``Q`` (up to a constant shared by all estimates)."""
        CQ = _codes(Q, self.cats)
        log_k = np.zeros((Q.shape[0], self.X.shape[0]))
        for j in range(self.X.shape[1]):
            if self.cats[j]:
                total = self.cats[j] + 1
                same = CQ[:, j, None] == self.C[None, :, j]
                log_k += np.where(same, np.log1p(-self.bw[j]), np.log(self.bw[j] / (total - 1)))
            else:
                q, x = Q[:, j, None], self.X[None, :, j]
                qn, xn = np.isnan(q), np.isnan(x)
                z = (np.nan_to_num(q) - np.nan_to_num(x)) / self.bw[j]
                gauss = -0.5 * z * z - np.log(self.bw[j] * np.sqrt(2 * np.pi))
                log_k += np.where(qn & xn, 0.0,
                                  np.where(qn | xn, np.log(INACTIVE_MISMATCH), gauss))
        if self.prior_weight > 0:  # the prior: uniform on [0, 1] and over the categories
            log_prior = -float(np.sum(np.log(self.cats[self.cats > 0] + 1.0)))
            log_k = np.hstack([log_k, np.full((Q.shape[0], 1), log_prior)])
            weights = np.concatenate([np.ones(self.X.shape[0]), [self.prior_weight]])
        else:
            weights = np.ones(self.X.shape[0])
        weights = weights / weights.sum()
        m = log_k.max(axis=1, keepdims=True)
        out: np.ndarray = (m + np.log(np.exp(log_k - m) @ weights[:, None]))[:, 0]
        return out

    def sample_near(self, i: int, rng: np.random.Generator, bandwidth_factor: float) -> np.ndarray:
        """A vector drawn around data point ``i`` (inactive dimensions stay NaN)."""
        x = self.X[i].copy()
        for j in range(len(x)):
            if np.isnan(x[j]):
                continue
            if self.cats[j]:
                if rng.random() >= 1 - self.bw[j]:
                    x[j] = (int(rng.integers(self.cats[j])) + 0.5) / self.cats[j]
            else:
                scale = self.bw[j] * bandwidth_factor
                for _ in range(20):
                    v = x[j] + scale * rng.normal()
                    if 0.0 <= v <= 1.0:
                        break
                x[j] = min(1.0, max(0.0, v))
        out: np.ndarray = x
        return out


def split_good_bad(X: np.ndarray, y: np.ndarray, top_n_percent: float,
                   min_points: int) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """(good rows, bad rows) by score ``y`` (higher is better), or None if too few points.

    Good: the best ``top_n_percent`` %, at least ``min_points``; bad: all the others, of which
    there must also be at least ``min_points``.
    """
    n = len(y)
    n_good = max(min_points, int(top_n_percent * n / 100))
    if n - n_good < min_points:
        return None
    order = np.argsort(-y, kind="stable")
    return X[order[:n_good]], X[order[n_good:]]


def propose(space: SearchSpace, X: np.ndarray, y: np.ndarray, rng: np.random.Generator,
            top_n_percent: float, min_points: int, num_samples: int, bandwidth_factor: float,
            min_bandwidth: float, seen: Container[str] = (),
            pending: Optional[np.ndarray] = None,
            prior_weight: float = 0.0) -> Optional[Dict[str, Any]]:
    """The candidate configuration with the best good/bad density ratio, or None.

    None when there are too few observations for a model, or when every candidate is in
    ``seen`` (keys from :func:`config_key`: in a discrete space the model would otherwise
    propose the same few configurations over and over). ``pending`` (encoded configurations
    still running) join the bad points: a constant liar, as Optuna's TPE does, so that
    asynchronous asks do not crowd around the same good points.
    """
    split = split_good_bad(X, y, top_n_percent, min_points)
    if split is None:
        return None
    cats = categories(space)
    bad_X = split[1] if pending is None or not len(pending) else np.vstack([split[1], pending])
    good = KDE(split[0], cats, min_bandwidth, prior_weight)
    bad = KDE(bad_X, cats, min_bandwidth, prior_weight)
    configs: List[Dict[str, Any]] = []
    p_prior = prior_weight / (len(good.X) + prior_weight)
    for _ in range(num_samples):
        if p_prior > 0 and rng.random() < p_prior:
            configs.append(space.sample(rng))
            continue
        i = int(rng.integers(len(good.X)))
        configs.append(space.from_vector(good.sample_near(i, rng, bandwidth_factor).tolist(), rng))
    configs = [c for c in configs if config_key(c) not in seen]
    if not configs:
        return None
    Q = np.array([space.to_vector(c) for c in configs])
    ratio = good.log_pdf(Q) - bad.log_pdf(Q)
    return configs[int(np.argmax(ratio))]


def config_key(config: Mapping[str, Any]) -> str:
    return json.dumps(config, sort_keys=True)


def stack(vectors: Sequence[np.ndarray]) -> np.ndarray:
    return np.array(vectors, dtype=float).reshape(len(vectors), -1)
