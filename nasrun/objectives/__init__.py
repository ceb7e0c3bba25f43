"""Objectives: how a trial is scored on a worker group (the "performance estimation" of NAS).

An objective's :meth:`Objective.run` gets a :class:`TrialContext` (the suggestion, the group's
backend and communicator, the device, a saved state to continue from) and returns a
:class:`TrialResult`; any exception it raises makes the trial ``failed`` with its traceback.
``distributed`` objectives run on every rank of the group (training); the others run on the
group's first rank only.

Types (``objective.type`` in the spec):

* ``train`` - :class:`nasrun.objectives.train.TrainObjective`: build and train the child network.
* ``function`` - :class:`FunctionObjective`: a user function ``fn(config, context) -> metrics``
  (a mapping of metric name to number, or an :class:`~nasrun.trial.Outcome`); ``context`` has
  ``trial_id``, ``budget``, ``seed``, ``options`` (the spec's ``objective.options``) and
  ``state`` (the :class:`~nasrun.store.ModelState` to continue from, or None).
* ``table`` - a tabular benchmark: wrap its ``evaluate(suggestion) -> (Outcome,
  simulated_seconds)`` in :class:`EvaluatorObjective` (see :func:`make_objective`).
"""
from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Tuple

from ..errors import UserInputError
from ..store.base import ModelState
from ..trial import DONE, Outcome, Suggestion
from .nb201_table import NB201Objective, NB201Table, default_nb201_dir, load_nb201

__all__ = ["EvaluatorObjective", "FunctionObjective", "NB201Objective", "NB201Table", "Objective",
           "TrialContext", "TrialResult", "default_nb201_dir", "load_nb201", "make_objective"]


@dataclass
class TrialContext:
    suggestion: Suggestion
    backend: Any = None  # nasrun.train.backends.Backend
    device: Any = None  # torch.device
    comm: Any = None  # the group's MPI communicator (None in-process)
    state: Optional[ModelState] = None  # continue from here (resume or promotion)
    control: Any = None  # nasrun.train.trainer.Control (first rank of the group only)
    keep_state: bool = False  # return the final state (multi-fidelity: a promotion may continue it)
    seed: int = 0
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class TrialResult:
    outcome: Outcome
    state: Optional[ModelState] = None
    digest: Optional[str] = None  # of the final parameters (tests compare ranks)


class Objective:
    distributed = False

    def prepare(self) -> None:
        """Called once per worker rank before its first trial (e.g. load the data set)."""

    def run(self, ctx: TrialContext) -> TrialResult:
        raise NotImplementedError


class EvaluatorObjective(Objective):
    """Adapter for ``evaluate(suggestion) -> (Outcome, simulated_seconds)`` (tabular benchmarks)."""

    def __init__(self, evaluate: Callable[[Suggestion], Tuple[Outcome, float]]):
        self.evaluate = evaluate

    def run(self, ctx):
        outcome, seconds = self.evaluate(ctx.suggestion)
        metrics = {**outcome.metrics, "simulated_seconds": float(seconds)}
        return TrialResult(Outcome(ctx.suggestion.trial_id, outcome.status, metrics, outcome.curve,
                                   outcome.error))


@dataclass
class FunctionContext:
    trial_id: int
    budget: Optional[float]
    seed: int
    options: Mapping[str, Any]
    state: Optional[ModelState]


class FunctionObjective(Objective):
    def __init__(self, target: str, python_path=(), options: Optional[Mapping[str, Any]] = None):
        for p in python_path:
            if p not in sys.path:
                sys.path.insert(0, p)
        module, _, name = target.partition(":")
        try:
            self.fn = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as e:
            raise UserInputError(f"objective.function: cannot import {target}: {e}") from None
        self.options = dict(options or {})

    def run(self, ctx):
        s = ctx.suggestion
        res = self.fn(dict(s.config), FunctionContext(s.trial_id, s.budget, ctx.seed, self.options,
                                                      ctx.state))
        if isinstance(res, Outcome):
            return TrialResult(Outcome(s.trial_id, res.status, res.metrics, res.curve, res.error))
        if not isinstance(res, Mapping):
            raise TypeError(f"objective function returned {type(res).__name__}, expected a mapping "
                            "of metric name to number")
        return TrialResult(Outcome(s.trial_id, DONE, {k: float(v) for k, v in res.items()}))


def make_objective(spec) -> Objective:
    """The objective of a validated spec."""
    o = spec.objective
    if o.type == "train":
        from .train import TrainObjective
        return TrainObjective(spec)
    if o.type == "function":
        return FunctionObjective(o.function, o.python_path, o.options)
    return EvaluatorObjective(NB201Objective(o.path).evaluate)
