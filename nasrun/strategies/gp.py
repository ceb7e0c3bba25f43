"""Gaussian-process Bayesian optimisation (Spearmint: Snoek, Larochelle & Adams, NeurIPS 2012).

The surrogate (:mod:`nasrun.strategies.gaussian_process`) is a GP whose kernel is a Matérn-5/2
over all parameters plus a first-order additive Matérn-5/2 (one term per parameter, its weight
fitted, possibly to nothing), one length scale per parameter (ARD), a categorical (overlap)
distance for categorical parameters and inactive parameters treated as a value of their own
(the space's vector encoding), on the
scores of the model's window warped by ``transform``: ``power`` (default, Yeo-Johnson:
:func:`model_based.power_transform`) or ``rank`` (normal quantiles of the ranks:
:func:`model_based.gaussian_ranks`) (see :mod:`nasrun.strategies.model_based`). Integers
are scored only at their own values: every candidate is a configuration of the space.

Hyperparameters maximise the log marginal likelihood with a prior on the length scales
(L-BFGS-B with the analytic gradient, from the previous ones, at most 50 iterations) on the
best and latest ``fit_window`` observations,
every ``refit_every`` observations; in between the GP is conditioned on the new data with the
same hyperparameters. Pending trials are handled with a kriging believer (Ginsbourger, Le Riche
& Carraro 2010): each counts as an observation of the GP's own posterior mean there, so its
variance, and with it the expected improvement of it and its close neighbours, collapses and
asynchronous asks spread out, while the model's picture of the landscape stays what the data
say. (A constant liar at the worst score, used before, also marked the region around every
pending trial as bad: near the incumbents, where pending trials are, it pushed asks away from
the best region.) The next configuration maximises expected improvement (``xi`` on the
standardised scale) over random candidates refined by local search from the best of them and
the incumbents.

Exact on resume: the state holds the observations, the hyperparameters and the observation count
at their fit; the GP itself is rebuilt from them at each ask (never pickled).
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from ..space import SearchSpace
from .acquisition import expected_improvement, maximize
from .gaussian_process import GP, LOG_BOUNDS_ADDITIVE, default_theta, fit_hyperparameters
from .kde_model import categories, stack
from .model_based import Config, ModelBased, gaussian_ranks, power_transform

TRANSFORMS = {"power": power_transform, "rank": gaussian_ranks}


class GaussianProcessBO(ModelBased):
    options = {**ModelBased.options, "refit_every": 5, "fit_window": 128, "xi": 0.01,
               "n_candidates": 512, "local_starts": 5, "transform": "power"}

    def __init__(self, space: SearchSpace, seed: int = 0, metric: str = "valid_accuracy",
                 mode: str = "max", **options: Any):
        super().__init__(space, seed, metric, mode, **options)
        if int(self.opts["refit_every"]) < 1 or int(self.opts["fit_window"]) < 4:
            raise ValueError("refit_every must be at least 1 and fit_window at least 4")
        if self.opts["transform"] not in TRANSFORMS:
            raise ValueError(f"transform must be one of {', '.join(TRANSFORMS)}, "
                             f"got {self.opts['transform']!r}")
        self.transform = TRANSFORMS[str(self.opts["transform"])]
        self.cats = categories(space)
        self.theta: Optional[np.ndarray] = None  # log hyperparameters of the last fit
        self.theta_n = 0  # observations at that fit

    def surrogate(self) -> Tuple[GP, float]:
        """The GP of the next ask and the best warped score: the hyperparameters refitted when
        due, conditioned on the window and on the pending trials at their believed values."""
        if self.theta is None or len(self.y) >= self.theta_n + int(self.opts["refit_every"]):
            Xf, yf = self.window(size=int(self.opts["fit_window"]))
            start = default_theta(len(self.space)) if self.theta is None else self.theta
            self.theta = fit_hyperparameters(Xf, self.transform(yf), self.cats, start)
            self.theta_n = len(self.y)
        X, y = self.window()
        z = self.transform(y)
        gp = GP(X, z, self.cats, self.theta)
        P = self.pending_vectors()
        if len(P):  # kriging believer: pending trials as the model's mean there
            believed, _ = gp.predict(P)
            gp = GP(np.vstack([X, P]), np.concatenate([z, believed]), self.cats, self.theta)
        return gp, float(np.max(z))

    def _propose(self) -> Optional[Config]:
        gp, best = self.surrogate()
        xi = float(self.opts["xi"])

        def acquisition(configs: List[Config]) -> np.ndarray:
            mean, std = gp.predict(stack([self.space.to_vector(c) for c in configs]))
            return expected_improvement(mean, std, best, xi)

        return maximize(acquisition, self.space, self.rng, self.incumbents(3), self.seen,
                        n_random=int(self.opts["n_candidates"]),
                        n_starts=int(self.opts["local_starts"]))

    def _model_state(self) -> Dict[str, Any]:
        return {"theta": None if self.theta is None else self.theta.copy(), "theta_n": self.theta_n}

    def _load_model_state(self, state: Mapping[str, Any]) -> None:
        theta = state["theta"]
        self.theta = None if theta is None else np.array(theta, dtype=float)
        d = len(self.space)
        if self.theta is not None and len(self.theta) == d + 2:
            # written before the additive part (lengths, signal, noise): the same kernel is the
            # one with the additive part at its lower bound, the next refit starts from there
            self.theta = np.insert(self.theta, d + 1, LOG_BOUNDS_ADDITIVE[0])
        self.theta_n = int(state["theta_n"])
