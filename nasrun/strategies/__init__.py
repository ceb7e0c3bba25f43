"""Search strategies behind one ask/tell interface (see :mod:`nasrun.strategies.base`)."""
from typing import Dict, Type

from .asha import ASHA
from .base import FINISHED, WAIT, Strategy
from .bohb import BOHB
from .evolution import RegularizedEvolution
from .gp import GaussianProcessBO
from .hyperband import Hyperband
from .local_search import LocalSearch
from .random_search import RandomSearch
from .rl_controller import RLController
from .smac import SMAC
from .tpe import TPE

STRATEGIES: Dict[str, Type[Strategy]] = {
    "random": RandomSearch,
    "evolution": RegularizedEvolution,
    "rl": RLController,
    "hyperband": Hyperband,
    "asha": ASHA,
    "bohb": BOHB,
    "gp": GaussianProcessBO,
    "smac": SMAC,
    "tpe": TPE,
    "local_search": LocalSearch,
}


def make_strategy(name: str, space, seed: int = 0, metric: str = "valid_accuracy", mode: str = "max",
                  **options) -> Strategy:
    """Build a registered strategy by name."""
    return STRATEGIES[name](space, seed=seed, metric=metric, mode=mode, **options)


__all__ = ["FINISHED", "STRATEGIES", "Strategy", "WAIT", "make_strategy"]
