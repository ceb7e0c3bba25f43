"""What an experiment's checkpoint holds, and the interface of a store that keeps it.

A :class:`Snapshot` is everything needed to continue a run: the spec text, every trial, the
strategy's ``state_dict()``, the rank-0 runtime state (RNGs, elapsed time, SLURM job chain) and
the saved model/optimizer state of trials that may continue (in flight, or finished at a lower
multi-fidelity rung and possibly promoted).

Store guarantees (every implementation):

* ``save(snapshot)`` is atomic: after a crash at any instant (kill -9 during the write
  included), ``load()`` returns either the new snapshot or the previous good one, never a mix
  and never garbage.
* ``load()`` verifies what it reads and falls back to the newest good generation, saying so
  through ``warnings``; it returns ``None`` when no experiment exists yet and raises
  :class:`~nasrun.errors.CheckpointError` when checkpoints exist but none is usable (never a
  silent fresh start).
* Nothing is ever unpickled: only arrays, JSON and strings are stored.
* Readers (``nasrun status``) never block the writer.
"""
from __future__ import annotations

import abc
import copy
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

from ..trial import Outcome, Suggestion

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


@dataclass
class TrialRecord:
    """One trial as the experiment knows it. Times are Unix seconds (rank 0's clock)."""

    suggestion: Suggestion
    status: str = QUEUED
    outcome: Optional[Outcome] = None
    group: Optional[int] = None
    start: Optional[float] = None
    end: Optional[float] = None
    job_id: Optional[str] = None  # SLURM job (or other launcher id) that finished it

    @property
    def trial_id(self) -> int:
        return self.suggestion.trial_id


@dataclass
class ModelState:
    """A trial's saved training state: model and optimizer tensors as numpy arrays, plus JSON meta.

    ``epoch`` is the number of finished epochs; ``meta`` holds plain data (the learning curve so
    far, the optimizer's non-tensor state, the RNG of the trainer...).

    A ModelState is a value, never updated in place: the same ``trial_id`` and ``epoch`` (with
    the same tensor names, dtypes, shapes and meta) mean the same tensors. Stores rely on it to
    write a model state once and reuse it in later snapshots; make a new ModelState after
    further training.
    """

    trial_id: int
    epoch: int
    tensors: Dict[str, np.ndarray] = field(default_factory=dict)
    meta: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Snapshot:
    spec_text: str
    version: str
    trials: List[TrialRecord] = field(default_factory=list)
    strategy_state: Dict[str, Any] = field(default_factory=dict)
    runtime_state: Dict[str, Any] = field(default_factory=dict)
    models: Dict[int, ModelState] = field(default_factory=dict)


class Store(abc.ABC):
    """Keeps an experiment's snapshots. See the module docstring for the guarantees."""

    @abc.abstractmethod
    def save(self, snapshot: Snapshot) -> None:
        ...

    @abc.abstractmethod
    def load(self) -> Optional[Snapshot]:
        ...


class MemoryStore(Store):
    """A store in memory, for tests and the simulator: save() keeps a deep copy."""

    def __init__(self) -> None:
        self.snapshot: Optional[Snapshot] = None
        self.saves = 0

    def save(self, snapshot: Snapshot) -> None:
        self.snapshot = copy.deepcopy(snapshot)
        self.saves += 1

    def load(self) -> Optional[Snapshot]:
        return copy.deepcopy(self.snapshot)
