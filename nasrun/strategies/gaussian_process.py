"""A Gaussian process over a search space's vector encoding, with a categorical kernel.

The kernel is Matérn-5/2 with one length scale per parameter (ARD) on the distance

    r(x, x')^2 = sum_j d_j(x, x')^2 / l_j^2,

where ``d_j`` is, for a categorical, 0 for the same choice and 1 otherwise (a Hamming /
overlap kernel, the categorical kernel of e.g. COCABO and SMAC3's GP); for a numeric parameter
the difference of the [0, 1] values. An inactive parameter is its own value: 0 between two
inactive ones, 1 between an inactive and an active one (so conditionals go through the space's
vector encoding, ``space.to_vector``'s NaN). One length scale per categorical parameter instead
of one per one-hot column keeps the hyperparameters few (6 for NAS-Bench-201, not 30), which is
what a few dozen observations can identify.

Hyperparameters (log length scales, log signal variance, log noise variance) maximise the log
marginal likelihood of the warped scores plus a Gamma(3, 6) log prior on each length scale
(:data:`LENGTH_PRIOR`, BoTorch's default) with L-BFGS-B and the analytic gradient.
Everything is deterministic: the same data and starting point give the same fit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import numpy as np
from scipy.linalg import cho_factor, cho_solve, solve_triangular
from scipy.optimize import minimize

SQRT5 = float(np.sqrt(5.0))
LOG_BOUNDS_LENGTH = (np.log(0.05), np.log(20.0))
LOG_BOUNDS_SIGNAL = (np.log(0.05), np.log(20.0))
LOG_BOUNDS_NOISE = (np.log(1e-5), np.log(0.5))
JITTER = 1e-8
#: Gamma(concentration, rate) prior on every length scale (BoTorch's default, Gamma(3, 6): mode
#: 1/3 of a parameter's range): maximum a posteriori instead of maximum likelihood keeps a few
#: dozen points from fitting a length scale of 0.05 or 20 (a dimension declared irrelevant)
LENGTH_PRIOR = (3.0, 6.0)


def categories(layout: List[int]) -> np.ndarray:
    return np.array(layout, dtype=int)


def differences(A: np.ndarray, B: np.ndarray, cats: np.ndarray) -> np.ndarray:
    """Per-parameter distances d_j between the rows of ``A`` and ``B``: shape (len(A), len(B), d)."""
    a, b = A[:, None, :], B[None, :, :]
    an, bn = np.isnan(a), np.isnan(b)
    is_cat = cats[None, None, :] > 0
    k = np.maximum(cats, 1)[None, None, :]
    ca = np.where(an, -1, np.minimum(np.nan_to_num(a) * k, k - 1).astype(int))
    cb = np.where(bn, -1, np.minimum(np.nan_to_num(b) * k, k - 1).astype(int))
    cat_d = (ca != cb).astype(float)
    num_d = np.where(an & bn, 0.0, np.where(an | bn, 1.0, np.abs(np.nan_to_num(a) - np.nan_to_num(b))))
    return np.where(is_cat, cat_d, num_d)


def default_theta(d: int) -> np.ndarray:
    """Length scales 1, signal variance 1, noise variance 1e-3 (logs)."""
    return np.concatenate([np.zeros(d), [0.0, np.log(1e-3)]])


def _matern(D2: np.ndarray, theta: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(K without noise, sigma^2 * 5/3 * exp(-sqrt5 r) * (1 + sqrt5 r)) for squared differences."""
    d = D2.shape[-1]
    inv_l2 = np.exp(-2.0 * theta[:d])
    r2 = D2 @ inv_l2
    r = np.sqrt(np.maximum(r2, 0.0))
    e = np.exp(theta[d]) * np.exp(-SQRT5 * r)
    return e * (1.0 + SQRT5 * r + 5.0 / 3.0 * r2), e * (5.0 / 3.0) * (1.0 + SQRT5 * r)


def neg_log_likelihood(theta: np.ndarray, D2: np.ndarray, z: np.ndarray) -> Tuple[float, np.ndarray]:
    """Negative log marginal likelihood of ``z`` and its gradient in ``theta``."""
    n, d = len(z), D2.shape[-1]
    Kf, A = _matern(D2, theta)
    noise = float(np.exp(theta[d + 1]))
    K = Kf + (noise + JITTER) * np.eye(n)
    try:
        L = np.linalg.cholesky(K)
    except np.linalg.LinAlgError:
        return 1e10, np.zeros_like(theta)
    alpha = cho_solve((L, True), z)
    nll = 0.5 * float(z @ alpha) + float(np.sum(np.log(np.diag(L)))) + 0.5 * n * np.log(2 * np.pi)
    W = np.outer(alpha, alpha) - cho_solve((L, True), np.eye(n))
    grad = np.empty_like(theta)
    inv_l2 = np.exp(-2.0 * theta[:d])
    grad[:d] = -0.5 * np.einsum("ij,ijk->k", W * A, D2) * inv_l2
    grad[d] = -0.5 * float(np.sum(W * Kf))
    grad[d + 1] = -0.5 * noise * float(np.trace(W))
    # the length scales' prior, Gamma(a, b) on l = exp(theta): -log p = -(a - 1) theta + b l
    a, b = LENGTH_PRIOR
    lengths = np.exp(theta[:d])
    nll += float(np.sum(-(a - 1.0) * theta[:d] + b * lengths))
    grad[:d] += -(a - 1.0) + b * lengths
    return nll, grad


def fit_hyperparameters(X: np.ndarray, z: np.ndarray, cats: np.ndarray, start: np.ndarray,
                        max_iter: int = 50) -> np.ndarray:
    """Log hyperparameters maximising the marginal likelihood, L-BFGS-B from ``start``."""
    d = X.shape[1]
    D2 = differences(X, X, cats) ** 2
    bounds = [LOG_BOUNDS_LENGTH] * d + [LOG_BOUNDS_SIGNAL, LOG_BOUNDS_NOISE]
    result = minimize(neg_log_likelihood, np.clip(start, [b[0] for b in bounds], [b[1] for b in bounds]),
                      args=(D2, z), jac=True, method="L-BFGS-B", bounds=bounds,
                      options={"maxiter": max_iter})
    return np.asarray(result.x, dtype=float)


def robust_cholesky(Kf: np.ndarray, noise: float) -> Tuple[np.ndarray, bool]:
    """The lower Cholesky factor of ``Kf + (noise + jitter) I``, the jitter growing tenfold
    until the matrix is numerically positive definite (near-duplicate points)."""
    jitter = JITTER
    while True:
        try:
            factor: Tuple[np.ndarray, bool] = cho_factor(Kf + (noise + jitter) * np.eye(len(Kf)),
                                                         lower=True)
            return factor
        except np.linalg.LinAlgError:
            if jitter > 1.0:
                raise
            jitter *= 10.0


@dataclass
class GP:
    """A GP conditioned on (X, z) with fixed hyperparameters ``theta``."""

    X: np.ndarray
    z: np.ndarray
    cats: np.ndarray
    theta: np.ndarray

    def __post_init__(self) -> None:
        d = self.X.shape[1]
        Kf, _ = _matern(differences(self.X, self.X, self.cats) ** 2, self.theta)
        self.L = robust_cholesky(Kf, float(np.exp(self.theta[d + 1])))
        self.alpha = cho_solve(self.L, self.z)

    def predict(self, Q: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of the latent function at the rows of ``Q``."""
        d = self.X.shape[1]
        Ks, _ = _matern(differences(Q, self.X, self.cats) ** 2, self.theta)
        mean = Ks @ self.alpha
        v = solve_triangular(self.L[0], Ks.T, lower=True)
        var = np.exp(self.theta[d]) - np.sum(v * v, axis=0)
        return mean, np.sqrt(np.maximum(var, 1e-12))
