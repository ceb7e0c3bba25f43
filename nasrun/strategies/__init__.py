"""Search strategies behind one ask/tell interface (see :mod:`nasrun.strategies.base`).

The strategies are declared in :mod:`nasrun.strategies.registry` (name -> module, class,
options, flags) and imported only when built: importing this package imports no strategy
implementation (no torch). ``STRATEGIES`` (name -> class) imports them all, on first use.
"""
from typing import Any, Dict, Type

from .base import FINISHED, WAIT, Strategy
from .registry import DECLARED, Declaration, make_strategy


def __getattr__(name: str) -> Any:
    if name == "STRATEGIES":  # PEP 562: the classes, imported when asked for
        classes: Dict[str, Type[Strategy]] = {n: d.load() for n, d in DECLARED.items()}
        return classes
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DECLARED", "Declaration", "FINISHED", "STRATEGIES", "Strategy", "WAIT", "make_strategy"]
