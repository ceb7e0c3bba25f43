"""Every search strategy declared by name, without importing its implementation.

The spec validator (``nasrun validate``, ``submit``) reads a strategy's options and flags from
its :class:`Declaration`; only :func:`make_strategy` (a run) imports the module. So a login node
without PyTorch can check a spec whose strategy is ``rl``, and validating costs no import of
torch. Adding a strategy is one entry in :data:`DECLARED`; a test checks that every entry
matches its class (options with their defaults, ``multi_fidelity``, ``multi_objective``).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Mapping, Tuple, Type

if TYPE_CHECKING:
    from ..space import SearchSpace
    from .base import Strategy


@dataclass(frozen=True)
class Declaration:
    """What the spec needs to know about a strategy: where it lives and what it accepts."""
    module: str  # under nasrun.strategies
    cls: str
    options: Mapping[str, Any] = field(default_factory=dict)  # accepted options, with defaults
    multi_fidelity: bool = False  # asks with a budget (epochs); min/max_budget come from the spec
    multi_objective: bool = False  # ranks by several objectives without scalarizing
    #: modules beyond numpy that importing the implementation imports: such a strategy is built
    #: (its constructor's checks run) when a run starts, not by ``nasrun validate``
    requires: Tuple[str, ...] = ()

    def load(self) -> Type[Strategy]:
        """The implementation class (imports its module)."""
        cls: Type[Strategy] = getattr(importlib.import_module(f"{__package__}.{self.module}"), self.cls)
        return cls


HYPERBAND_OPTIONS: Dict[str, Any] = {"min_budget": 1.0, "max_budget": 81.0, "eta": 3.0, "max_brackets": 0}

DECLARED: Dict[str, Declaration] = {
    "random": Declaration("random_search", "RandomSearch", multi_objective=True),
    "evolution": Declaration("evolution", "RegularizedEvolution",
                             {"population_size": 50, "sample_size": 10}, multi_objective=True),
    "rl": Declaration("rl_controller", "RLController",
                      {"replicas": 4, "samples_per_replica": 4, "bins": 8, "hidden_size": 32, "lr": 0.01,
                       "baseline_decay": 0.95, "entropy_weight": 0.001, "max_staleness": 8,
                       "normalize_advantage": True, "temperature": 2.5, "tanh_constant": 2.0}),
    "hyperband": Declaration("hyperband", "Hyperband", HYPERBAND_OPTIONS, multi_fidelity=True),
    "asha": Declaration("asha", "ASHA", {"min_budget": 1.0, "max_budget": 81.0, "eta": 3.0},
                        multi_fidelity=True),
    "bohb": Declaration("bohb", "BOHB",
                        {**HYPERBAND_OPTIONS, "random_fraction": 1 / 3,
                         "top_n_percent": 15.0, "min_points_in_model": 0, "num_samples": 64,
                         "bandwidth_factor": 3.0, "min_bandwidth": 1e-3}, multi_fidelity=True),
    "gp": Declaration("gp", "GaussianProcessBO",
                      {"n_initial": 10, "random_fraction": 0.1, "window": 256, "refit_every": 5,
                       "fit_window": 128, "xi": 0.01, "n_candidates": 512, "local_starts": 5,
                       "transform": "power"}),
    "smac": Declaration("smac", "SMAC",
                        {"n_initial": 10, "random_fraction": 0.2, "window": 512, "n_trees": 10,
                         "refit_every": 1, "n_candidates": 64, "local_starts": 5}),
    "tpe": Declaration("tpe", "TPE",
                       {"n_initial": 10, "random_fraction": 0.1, "window": 512, "top_n_percent": 15.0,
                        "min_points_in_model": 0, "num_samples": 64, "bandwidth_factor": 3.0,
                        "min_bandwidth": 1e-3, "prior_weight": 1.0}),
    "local_search": Declaration("local_search", "LocalSearch", {"n_initial": 10, "numeric_steps": 4}),
}


def make_strategy(name: str, space: SearchSpace, seed: int = 0, metric: str = "valid_accuracy",
                  mode: str = "max", **options: Any) -> Strategy:
    """Build a declared strategy by name (imports its implementation)."""
    return DECLARED[name].load()(space, seed=seed, metric=metric, mode=mode, **options)
