"""The interface every stopper implements: continue or stop a trial from its epochs so far.

A stopper watches the learning curves of a run's trials and answers, after each epoch of a
trial, whether the trial should stop early. Like a strategy it is pure: no MPI, no files, no
clocks. The runtime (or the simulator, or a test replaying recorded curves) drives it::

    stopper = make_stopper("median", epochs=10)
    ...after epoch t of trial i:    stop = stopper.should_stop(i, curve)   # curve[:t]
    ...when trial i has finished:   stopper.finished(i, curve, stopped=stop)  # failed: curve None

A curve is the trial's main metric after each epoch, oldest first, oriented so that higher is
better (the caller negates a metric to minimise); ``None`` marks an epoch without a finite value.

Rules every implementation keeps:

* ``should_stop`` is given the whole curve so far and keeps nothing of it: its answer is a
  function of the curve and of the finished trials told so far, so a trial that restarts from a
  checkpoint (or reports in any order relative to other trials) is judged the same way.
* ``finished`` accepts trials in any order, failures included (a failed trial is "no
  information"); a stopped trial's partial curve is told with ``stopped=True``.
* ``state_dict()`` returns plain data; ``load_state_dict(state_dict())`` on a fresh stopper with
  the same arguments answers exactly as the uninterrupted one.
"""
from __future__ import annotations

import abc
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence

Curve = Sequence[Optional[float]]

__all__ = ["Curve", "Stopper", "clean"]


class Stopper(abc.ABC):
    """Base class: the final epoch, the options (validated against :attr:`options`)."""

    #: options a subclass accepts, with their defaults (the spec validates against this)
    options: Dict[str, Any] = {}

    def __init__(self, epochs: int, **options: Any) -> None:
        unknown = set(options) - set(self.options)
        if unknown:
            raise ValueError(f"{type(self).__name__}: unknown options {sorted(unknown)}")
        if int(epochs) < 1:
            raise ValueError(f"epochs must be at least 1, not {epochs!r}")
        self.epochs = int(epochs)
        self.opts: Dict[str, Any] = {**self.options, **options}
        for k, v in self.opts.items():
            problem = self.option_problem(k, v)
            if problem:
                raise ValueError(f"{type(self).__name__}: option {k}: {problem}")

    @classmethod
    def option_problem(cls, name: str, value: Any) -> Optional[str]:
        """What is wrong with a (well-typed) option value, or None (the spec says it too)."""
        return None

    @abc.abstractmethod
    def should_stop(self, trial_id: int, curve: Curve) -> bool:
        """Whether trial ``trial_id`` should stop after epoch ``len(curve)``."""

    @abc.abstractmethod
    def finished(self, trial_id: int, curve: Optional[Curve], stopped: bool = False) -> None:
        """Trial ``trial_id`` has ended: its curve (``None`` when it failed); ``stopped`` when a
        stopper ended it early."""

    @abc.abstractmethod
    def state_dict(self) -> Dict[str, Any]:
        """Plain data: what ``load_state_dict`` needs to answer as this stopper does."""

    @abc.abstractmethod
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        ...


def clean(curve: Optional[Curve]) -> List[Optional[float]]:
    """A curve as floats, ``None`` for a missing or non-finite value."""
    out: List[Optional[float]] = []
    for v in curve or ():
        f = None if v is None else float(v)
        out.append(f if f is not None and math.isfinite(f) else None)
    return out
