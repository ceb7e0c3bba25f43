"""Search strategies behind one ask/tell interface (see :mod:`nasrun.strategies.base`)."""
from typing import Dict, Type

from .asha import ASHA
from .base import FINISHED, WAIT, Strategy
from .bohb import BOHB
from .evolution import RegularizedEvolution
from .hyperband import Hyperband
from .random_search import RandomSearch
from .rl_controller import RLController

STRATEGIES: Dict[str, Type[Strategy]] = {
    "random": RandomSearch,
    "evolution": RegularizedEvolution,
    "rl": RLController,
    "hyperband": Hyperband,
    "asha": ASHA,
    "bohb": BOHB,
}


def make_strategy(name: str, space, seed: int = 0, metric: str = "valid_accuracy", mode: str = "max",
                  **options) -> Strategy:
    """Build a registered strategy by name."""
    return STRATEGIES[name](space, seed=seed, metric=metric, mode=mode, **options)


__all__ = ["FINISHED", "STRATEGIES", "Strategy", "WAIT", "make_strategy"]
