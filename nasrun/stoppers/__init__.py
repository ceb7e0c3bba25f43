"""Stoppers: end a trial early from its learning curve (see :mod:`nasrun.stoppers.base`).

``strategy.stopper`` in a spec (``median`` or ``{name: curve, threshold: 0.05}``) puts one
in front of any single-fidelity strategy: rank 0 asks it after each epoch of a trial.
"""
from typing import Any, Dict, Type

from .base import Stopper
from .curve import CurveStopper
from .median import MedianStopper

STOPPERS: Dict[str, Type[Stopper]] = {
    "median": MedianStopper,
    "curve": CurveStopper,
}


def make_stopper(name: str, epochs: int, **options: Any) -> Stopper:
    """Build a registered stopper by name (``epochs``: a trial's final epoch)."""
    return STOPPERS[name](epochs, **options)


__all__ = ["STOPPERS", "Stopper", "make_stopper"]
