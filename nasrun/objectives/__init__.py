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
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple

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


class FunctionContext:
    """What a function objective is given besides its configuration.

    ``trial_id``, ``budget`` (epochs for multi-fidelity strategies, else None), ``seed``,
    ``options`` (the spec's ``objective.options``) and ``state`` (the
    :class:`~nasrun.store.ModelState` to continue from, or None). ``save_state(state)`` checkpoints
    a state (written in the background; it is what a resumed or promoted trial gets back);
    ``report(epoch, metrics)`` reports an epoch's metrics (and the state writes finished since the
    last call, so rank 0 knows them at once) and returns True when a stopper says the trial should
    stop now (return your metrics then: the trial is recorded as stopped early).
    """

    def __init__(self, trial_id: int, budget: Optional[float], seed: int,
                 options: Mapping[str, Any], state: Optional[ModelState], control: Any = None):
        self.trial_id, self.budget, self.seed = trial_id, budget, seed
        self.options, self.state, self._control = options, state, control
        self.stopped_at: Optional[int] = None
        self.curve: list = []
        self.last_state: Optional[ModelState] = None

    def save_state(self, state: ModelState) -> None:
        """Checkpoint ``state`` (the last one saved is also the trial's final state)."""
        self.last_state = state
        if self._control is not None:
            self._control.save_state(state)

    def report(self, epoch: int, metrics: Mapping[str, float]) -> bool:
        point = {"epoch": int(epoch), **{k: float(v) for k, v in metrics.items()}}
        self.curve.append(point)
        c = self._control
        if c is not None:
            c.poll()
        if c is None or c.report_epoch is None or self.stopped_at is not None:
            return self.stopped_at is not None
        if c.report_epoch(int(epoch), point):
            self.stopped_at = int(epoch)
        return self.stopped_at is not None


def import_function(target: str, python_path: Sequence[str] = ()) -> Callable[..., Any]:
    """``module:function`` imported (``python_path`` entries first on sys.path); a
    UserInputError saying what went wrong otherwise. This runs the module's code."""
    for p in python_path:
        if p not in sys.path:
            sys.path.insert(0, p)
    module, _, name = target.partition(":")
    try:
        fn = getattr(importlib.import_module(module), name)
    except SyntaxError as e:
        raise UserInputError(f"objective.function: cannot import {target}: syntax error in "
                             f"{e.filename}, line {e.lineno}: {e.msg}") from None
    except (Exception, SystemExit) as e:  # noqa: BLE001 - whatever the module raises on import
        raise UserInputError(f"objective.function: cannot import {target}: "
                             f"{type(e).__name__}: {e}") from None
    if not callable(fn):
        raise UserInputError(f"objective.function: {target} is a {type(fn).__name__}, not a function")
    return fn


class FunctionObjective(Objective):
    def __init__(self, target: str, python_path=(), options: Optional[Mapping[str, Any]] = None):
        self.fn = import_function(target, python_path)
        self.options = dict(options or {})

    def run(self, ctx):
        s = ctx.suggestion
        fc = FunctionContext(s.trial_id, s.budget, ctx.seed, self.options, ctx.state, ctx.control)
        res = self.fn(dict(s.config), fc)
        if isinstance(res, Outcome):
            return TrialResult(Outcome(s.trial_id, res.status, res.metrics, res.curve or tuple(fc.curve),
                                       res.error, res.stopped_at or fc.stopped_at), fc.last_state)
        if not isinstance(res, Mapping):
            raise TypeError(f"objective function returned {type(res).__name__}, expected a mapping "
                            "of metric name to number")
        return TrialResult(Outcome(s.trial_id, DONE, {k: float(v) for k, v in res.items()},
                                   tuple(fc.curve), stopped_at=fc.stopped_at), fc.last_state)


def make_objective(spec) -> Objective:
    """The objective of a validated spec."""
    o = spec.objective
    if o.type == "train":
        from .train import TrainObjective
        return TrainObjective(spec)
    if o.type == "function":
        return FunctionObjective(o.function, o.python_path, o.options)
    return EvaluatorObjective(NB201Objective(o.path).evaluate)
