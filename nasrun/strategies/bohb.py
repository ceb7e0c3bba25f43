"""BOHB (Falkner, Klein & Hutter, ICML 2018): Hyperband whose new configurations come from a model.

Every told result is recorded with its budget. A new configuration is random with probability
``random_fraction`` (kept for robustness), and also while no budget has enough observations;
otherwise it is proposed by :func:`kde_model.propose` from the observations of the largest
budget that has enough of them: good = best ``top_n_percent`` %, bad = the rest, each with at
least ``min_points_in_model`` points (0 means d + 1). Failed trials are not observations.
Like HpBandSter, idle workers start further brackets (``max_brackets``, 0: no limit) rather than
wait for a rung to complete. Unlike HpBandSter, the model never proposes a configuration this
strategy has already started (in a discrete space such as NAS-Bench-201 it otherwise proposes
the same few over and over); when every candidate was seen it falls back to a random one.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Set

import numpy as np

from ..space import SearchSpace
from ..trial import Suggestion
from .hyperband import Hyperband
from .kde_model import config_key, propose


class BOHB(Hyperband):
    options = {**Hyperband.options, "random_fraction": 1 / 3,
               "top_n_percent": 15.0,
               "min_points_in_model": 0, "num_samples": 64, "bandwidth_factor": 3.0,
               "min_bandwidth": 1e-3}

    def __init__(self, space: SearchSpace, seed: int = 0, metric: str = "valid_accuracy",
                 mode: str = "max", **options: Any) -> None:
        super().__init__(space, seed, metric, mode, **options)
        # budget -> (encoded configurations, scores), in telling order
        self.obs: Dict[float, List[List[Any]]] = {}
        self.seen: Set[str] = set()  # keys of the new configurations handed out so far

    def _observe(self, suggestion: Suggestion, score: Optional[float]) -> None:
        if score is None:
            return
        assert suggestion.budget is not None  # every suggestion of the Hyperband family has one
        X, y = self.obs.setdefault(float(suggestion.budget), [[], []])
        X.append(self.space.to_vector(suggestion.config))
        y.append(float(score))

    def _sample(self, budget: float) -> Dict[str, Any]:
        config = self._model_sample()
        self.seen.add(config_key(config))
        return config

    def _model_sample(self) -> Dict[str, Any]:
        if self.rng.random() < float(self.opts["random_fraction"]):
            return self.space.sample(self.rng)
        min_points = int(self.opts["min_points_in_model"]) or len(self.space) + 1
        for b in sorted(self.obs, reverse=True):
            X, y = self.obs[b]
            config = propose(self.space, np.array(X), np.array(y), self.rng,
                             float(self.opts["top_n_percent"]), min_points,
                             int(self.opts["num_samples"]), float(self.opts["bandwidth_factor"]),
                             float(self.opts["min_bandwidth"]), self.seen)
            if config is not None:
                return config
        return self.space.sample(self.rng)

    def _state(self) -> Dict[str, Any]:
        state = super()._state()
        state["observations"] = [{"budget": b, "X": np.array(X, dtype=float).reshape(len(y), -1),
                                  "y": np.array(y, dtype=float)}
                                 for b, (X, y) in self.obs.items()]
        state["seen"] = sorted(self.seen)
        return state

    def _load_state(self, state: Mapping[str, Any]) -> None:
        super()._load_state(state)
        self.obs = {float(o["budget"]): [[np.array(r) for r in np.asarray(o["X"])],
                                         [float(v) for v in np.asarray(o["y"])]]
                    for o in state["observations"]}
        self.seen = set(state["seen"])
