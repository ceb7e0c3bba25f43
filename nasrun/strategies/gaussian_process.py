"""A Gaussian process over a search space's vector encoding, with a categorical kernel.

The kernel is the sum of two Matérn-5/2 parts with one length scale per parameter (ARD), shared:

    k(x, x') = s_p m(r(x, x')) + s_a / d sum_j m(d_j(x, x') / l_j),
    r(x, x')^2 = sum_j d_j(x, x')^2 / l_j^2,   m(r) = (1 + sqrt5 r + 5/3 r^2) exp(-sqrt5 r),

where ``d_j`` is, for a categorical, 0 for the same choice and 1 otherwise (a Hamming /
overlap kernel, the categorical kernel of e.g. COCABO and SMAC3's GP); for a numeric parameter
the difference of the [0, 1] values. An inactive parameter is its own value: 0 between two
inactive ones, 1 between an inactive and an active one (so conditionals go through the space's
vector encoding, ``space.to_vector``'s NaN). One length scale per categorical parameter instead
of one per one-hot column keeps the hyperparameters few (6 for NAS-Bench-201, not 30), which is
what a few dozen observations can identify.

The first (joint) part says that configurations are alike when they are close in every
parameter at once; the second (additive) part, a first-order additive kernel (Duvenaud, Nickisch
& Rasmussen, NeurIPS 2011; CoCaBO's sum plus product, Ru et al. 2020), says that what one
choice did in one configuration it does in others too. On a NAS cell (one operation per edge,
each with a largely separate effect) the additive part carries what was learnt about an edge's
operation to configurations that differ everywhere else, which the joint part alone cannot: with
6 edges any two random cells are far apart. Its weight ``s_a`` is fitted like everything else
and may go to its lower bound (1e-4), where the kernel is the joint part alone: it does on
Branin, whose two parameters interact.

Hyperparameters (log length scales, log s_p, log s_a, log noise variance) maximise the log
marginal likelihood of the warped scores plus a Gamma(3, 6) log prior on each length scale
(:data:`LENGTH_PRIOR`, BoTorch's default) with L-BFGS-B and the analytic gradient.
Everything is deterministic: the same data and starting point give the same fit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
from scipy.linalg import cho_factor, cho_solve, solve_triangular
from scipy.optimize import minimize

SQRT5 = float(np.sqrt(5.0))
LOG_BOUNDS_LENGTH = (np.log(0.05), np.log(20.0))
LOG_BOUNDS_SIGNAL = (np.log(0.05), np.log(20.0))
#: the additive part's variance may vanish (1e-4 of a unit-variance score: the joint part alone)
LOG_BOUNDS_ADDITIVE = (np.log(1e-4), np.log(20.0))
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
    """Length scales 1, joint variance 1, additive variance 0.5, noise variance 1e-3 (logs)."""
    return np.concatenate([np.zeros(d), [0.0, np.log(0.5), np.log(1e-3)]])


def _m52(r2: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Matérn-5/2 m(r) at squared distances ``r2`` and -2 dm/d(r^2) = 5/3 (1 + sqrt5 r) exp(-sqrt5 r)."""
    r = np.sqrt(np.maximum(r2, 0.0))
    e = np.exp(-SQRT5 * r)
    return e * (1.0 + SQRT5 * r + 5.0 / 3.0 * r2), e * (5.0 / 3.0) * (1.0 + SQRT5 * r)


def _parts(D2: np.ndarray, theta: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The joint and additive parts of the kernel at squared differences ``D2`` (..., d), each
    with its derivative factor: (Kp, Ap, Ka, Aa) where Kp = s_p m(r), Ap = s_p 5/3 (1 + sqrt5 r)
    exp(-sqrt5 r), Ka = s_a / d sum_j m(r_j) and Aa (..., d) the same factor per parameter."""
    d = D2.shape[-1]
    scaled = D2 * np.exp(-2.0 * theta[:d])
    s_p, s_a = np.exp(theta[d]), np.exp(theta[d + 1])
    mp, ap = _m52(np.sum(scaled, axis=-1))
    mj, aj = _m52(scaled)
    return s_p * mp, s_p * ap, (s_a / d) * np.sum(mj, axis=-1), (s_a / d) * aj


def _kernel(D2: np.ndarray, theta: np.ndarray, binary: Optional[np.ndarray] = None) -> np.ndarray:
    """The kernel without noise at squared differences ``D2``. ``binary`` marks the parameters
    whose distances are only ever 0 or 1 (the categoricals): there m(r_j) is 1 or m(1 / l_j),
    linear in D2_j, so their additive terms are one matrix product instead of a Matérn per entry
    (the same values; the per-entry form doubled the cost of an ask on NAS-Bench-201)."""
    if binary is None or not binary.any():
        Kp, _, Ka, _ = _parts(D2, theta)
        return np.asarray(Kp + Ka)
    d = D2.shape[-1]
    inv_l2 = np.exp(-2.0 * theta[:d])
    s_p, s_a = np.exp(theta[d]), np.exp(theta[d + 1])
    joint, _ = _m52(D2 @ inv_l2)
    slope = _m52(inv_l2[binary])[0] - 1.0
    additive = np.count_nonzero(binary) + D2[..., binary] @ slope
    rest = ~binary
    if rest.any():
        additive = additive + np.sum(_m52(D2[..., rest] * inv_l2[rest])[0], axis=-1)
    return np.asarray(s_p * joint + (s_a / d) * additive)


def neg_log_likelihood(theta: np.ndarray, D2: np.ndarray, z: np.ndarray) -> Tuple[float, np.ndarray]:
    """Negative log marginal likelihood of ``z`` and its gradient in ``theta``."""
    n, d = len(z), D2.shape[-1]
    Kp, Ap, Ka, Aa = _parts(D2, theta)
    noise = float(np.exp(theta[d + 2]))
    K = Kp + Ka + (noise + JITTER) * np.eye(n)
    try:
        L = np.linalg.cholesky(K)
    except np.linalg.LinAlgError:
        return 1e10, np.zeros_like(theta)
    alpha = cho_solve((L, True), z)
    nll = 0.5 * float(z @ alpha) + float(np.sum(np.log(np.diag(L)))) + 0.5 * n * np.log(2 * np.pi)
    W = np.outer(alpha, alpha) - cho_solve((L, True), np.eye(n))
    grad = np.empty_like(theta)
    inv_l2 = np.exp(-2.0 * theta[:d])
    # dK/dtheta_j = (Ap + Aa_j) D2_j / l_j^2 (both parts share the length scales)
    grad[:d] = -0.5 * np.einsum("ijk,ijk->k", (W * Ap)[..., None] + W[..., None] * Aa, D2) * inv_l2
    grad[d] = -0.5 * float(np.sum(W * Kp))
    grad[d + 1] = -0.5 * float(np.sum(W * Ka))
    grad[d + 2] = -0.5 * noise * float(np.trace(W))
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
    bounds = [LOG_BOUNDS_LENGTH] * d + [LOG_BOUNDS_SIGNAL, LOG_BOUNDS_ADDITIVE, LOG_BOUNDS_NOISE]
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
        self.binary = self.cats > 0
        Kf = _kernel(differences(self.X, self.X, self.cats) ** 2, self.theta, self.binary)
        self.L = robust_cholesky(Kf, float(np.exp(self.theta[d + 2])))
        self.alpha = cho_solve(self.L, self.z)

    def predict(self, Q: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of the latent function at the rows of ``Q``."""
        d = self.X.shape[1]
        Ks = _kernel(differences(Q, self.X, self.cats) ** 2, self.theta, self.binary)
        mean = Ks @ self.alpha
        v = solve_triangular(self.L[0], Ks.T, lower=True)
        var = np.exp(self.theta[d]) + np.exp(self.theta[d + 1]) - np.sum(v * v, axis=0)
        return mean, np.sqrt(np.maximum(var, 1e-12))
