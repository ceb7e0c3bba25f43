"""SMAC-style Bayesian optimisation with a random forest (Hutter, Hoos & Leyton-Brown, LION 2011).

The surrogate is a random forest (scikit-learn's, with SMAC's settings: ``n_trees`` trees on
bootstrap samples, 5/6 of the features per split, at least 3 points per leaf) on the model's
window of scores as normal quantiles of their ranks; inputs are the space's vector encoding
with -1 for an inactive parameter (a tree splits conditionals apart by itself). The predictive
mean and variance are those across the trees. The next configuration maximises expected
improvement over random candidates plus local search from the ``local_starts`` best observed
configurations (SMAC's local search around the incumbents); a ``random_fraction`` of asks are
random configurations (SMAC's interleaving). The forest is refit every ``refit_every``
observations; pending configurations are never proposed again (the random candidates and the
interleaving keep parallel asks apart).

Exact on resume: the state holds the observations, the observation count of the last fit and the
forest's seed (drawn from the strategy's RNG); the forest is rebuilt from them, never pickled.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

import numpy as np
from sklearn.ensemble import RandomForestRegressor

from ..space import SearchSpace
from .acquisition import expected_improvement, maximize
from .kde_model import stack
from .model_based import Config, ModelBased, gaussian_ranks


def forest_inputs(X: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(X), -1.0, X)


class SMAC(ModelBased):
    options = {**ModelBased.options, "random_fraction": 0.2, "window": 512, "n_trees": 10,
               "refit_every": 1, "n_candidates": 64, "local_starts": 5}

    def __init__(self, space: SearchSpace, seed: int = 0, metric: str = "valid_accuracy",
                 mode: str = "max", **options: Any):
        super().__init__(space, seed, metric, mode, **options)
        if int(self.opts["refit_every"]) < 1 or int(self.opts["n_trees"]) < 1:
            raise ValueError("refit_every and n_trees must be at least 1")
        self.fit_n = 0  # observations at the last fit (0: never fitted)
        self.fit_seed = 0
        self._forest: Optional[RandomForestRegressor] = None  # cache, rebuilt from the above
        self._best = 0.0

    def _propose(self) -> Optional[Config]:
        if self.fit_n == 0 or len(self.y) >= self.fit_n + int(self.opts["refit_every"]):
            self.fit_n, self.fit_seed = len(self.y), int(self.rng.integers(2 ** 31 - 1))
            self._forest = None
        if self._forest is None:
            self._fit()
        forest = self._forest
        assert forest is not None
        best = self._best

        def acquisition(configs: List[Config]) -> np.ndarray:
            Q = forest_inputs(stack([self.space.to_vector(c) for c in configs]))
            per_tree = np.stack([t.predict(Q) for t in forest.estimators_])
            return expected_improvement(per_tree.mean(axis=0), per_tree.std(axis=0), best)

        return maximize(acquisition, self.space, self.rng,
                        self.incumbents(int(self.opts["local_starts"])), self.seen,
                        n_random=int(self.opts["n_candidates"]), n_starts=0)

    def _fit(self) -> None:
        X, y = self.window(self.fit_n)
        z = gaussian_ranks(y)
        self._best = float(np.max(z))
        self._forest = RandomForestRegressor(
            n_estimators=int(self.opts["n_trees"]), max_features=5 / 6, min_samples_split=3,
            min_samples_leaf=3, bootstrap=True, random_state=self.fit_seed, n_jobs=1,
        ).fit(forest_inputs(X), z)

    def _model_state(self) -> Dict[str, Any]:
        return {"fit_n": self.fit_n, "fit_seed": self.fit_seed}

    def _load_model_state(self, state: Mapping[str, Any]) -> None:
        self.fit_n, self.fit_seed = int(state["fit_n"]), int(state["fit_seed"])
        self._forest = None
