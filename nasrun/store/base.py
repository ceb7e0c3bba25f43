"""What an experiment's checkpoint holds, and the interface of a store that keeps it.

A run is a sequence of **events** (:mod:`nasrun.store.events`): a trial was asked of the
strategy, started on a group, saved a model state, finished (and was told to the strategy),
was interrupted... The driver logs each event as it happens; the store writes it at once
(cheap: one append) and now and then **commits**: folds the events into its durable layout,
with the rank-0 runtime state and, when it is due, a snapshot of the strategy. Loading gives
back an :class:`~nasrun.store.state.ExperimentState` (every trial, the live ones as records)
plus the newest strategy snapshot and the strategy calls logged after it, which
:func:`~nasrun.store.replay.restore_strategy` replays, so a resumed search asks exactly what
the uninterrupted one would have asked.

Guarantees of every store:

* ``log(event)`` returns once the event is written where a kill -9 of the whole job cannot
  lose it (the OS has it); ``sync()`` makes what was logged survive a power loss too (fsync;
  the driver calls it at least every ``checkpoint.every_seconds``). The driver logs a finished
  trial before the group that ran it gets new work, so no finished trial is ever lost.
* ``commit()`` is atomic: after a crash at any instant, ``load()`` returns the state as of
  the last logged event that was written completely: never a mix, never garbage.
* ``load()`` verifies what it reads (checksums) and falls back to the newest good state,
  saying so in ``warnings``; it returns ``None`` when no experiment exists yet and raises
  :class:`~nasrun.errors.CheckpointError` when checkpoints exist but none is usable (never a
  silent fresh start).
* Nothing is ever unpickled: only arrays, JSON and strings are stored.
* Readers (``nasrun status``) never block the writer and take no locks; one writer at a time
  (a second one is refused).
* Model states (weights and optimizer state) are written by the worker groups themselves, as
  separate files (:mod:`nasrun.store.states`); the experiment records references to them.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..trial import Outcome, Suggestion

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
LIVE = (QUEUED, RUNNING)
ENDED = (DONE, FAILED)


@dataclass
class TrialRecord:
    """One trial as the experiment knows it. Times are Unix seconds on rank 0's clock (a virtual
    clock in simulations).

    ``attempts`` counts starts that did not end with a result or a clean interruption (a rank
    died or the job was killed while the trial ran); ``ask_seq``/``tell_seq`` number the
    strategy calls that created and answered the trial (the order in which a resume replays them).
    """

    suggestion: Suggestion
    status: str = QUEUED
    outcome: Optional[Outcome] = None
    group: Optional[int] = None
    start: Optional[float] = None
    end: Optional[float] = None
    job_id: Optional[str] = None  # SLURM job (or other launcher id) that finished it
    attempts: int = 0
    ask_seq: int = -1
    tell_seq: int = -1

    @property
    def trial_id(self) -> int:
        return self.suggestion.trial_id


@dataclass
class ModelState:
    """A trial's saved training state: model and optimizer tensors as numpy arrays, plus JSON meta.

    ``epoch`` is the number of finished epochs; ``meta`` holds plain data (the learning curve so
    far, the optimizer's non-tensor state, the RNG of the trainer...). A ModelState is a value,
    never updated in place; a new one is made after further training.
    """

    trial_id: int
    epoch: int
    tensors: Dict[str, np.ndarray] = field(default_factory=dict)
    meta: Dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StateRef:
    """Where a saved :class:`ModelState` is: a file in the experiment's weights directory (or a
    key of an in-memory store), its checksum, the epoch it holds and its size."""

    trial_id: int
    epoch: int
    file: str
    checksum: str
    nbytes: int = 0

    def to_dict(self) -> Dict[str, Any]:
        return {"trial_id": self.trial_id, "epoch": self.epoch, "file": self.file,
                "checksum": self.checksum, "nbytes": self.nbytes}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "StateRef":
        return cls(int(d["trial_id"]), int(d["epoch"]), str(d["file"]), str(d["checksum"]),
                   int(d.get("nbytes", 0)))


class Store(abc.ABC):
    """Keeps one experiment. See the module docstring for the guarantees.

    The writer's life: ``load()`` (None for a new experiment), ``begin(spec_text, version,
    state)`` (claims the experiment, refusing a second writer), then ``log`` / ``commit`` /
    ``sync`` as the run goes, and ``close()``. ``state`` mirrors every logged event
    (:class:`~nasrun.store.state.ExperimentState`): the driver reads the live trials from it.
    ``states`` is where worker groups put model states.
    """

    state: Any  # nasrun.store.state.ExperimentState
    states: Any  # nasrun.store.states.StateStore

    @abc.abstractmethod
    def load(self) -> Optional["Loaded"]:
        """The newest good state, or None when there is no experiment yet."""

    def claim(self) -> None:
        """Become the experiment's only writer now, before anything is loaded or any worker
        waits (``begin`` claims too; claiming twice is one claim). A live writer: LockedError."""

    @abc.abstractmethod
    def begin(self, spec_text: str, version: str, loaded: Optional["Loaded"],
              metric: str = "valid_accuracy", mode: str = "max") -> None:
        """Become the experiment's writer, continuing ``loaded`` (or a new experiment); ``metric``
        and ``mode`` name the main objective, which the store records for its readers."""

    @abc.abstractmethod
    def log(self, event: Any) -> None:
        """Apply ``event`` to ``state`` and write it (durable against a kill on return)."""

    @abc.abstractmethod
    def commit(self, runtime: Dict[str, Any],
               strategy: Optional[Tuple[int, Dict[str, Any]]] = None) -> None:
        """Fold the logged events into the durable layout, with the runtime state and, when
        given, a strategy snapshot ``(seq, state_dict)`` taken after strategy call ``seq``."""

    def sync(self) -> None:
        """Make what was logged survive a power loss (fsync)."""

    def close(self) -> None:
        """Release the experiment (the writer lock)."""

    @property
    def pending_events(self) -> int:
        """Events logged since the last commit."""
        return 0


@dataclass
class Loaded:
    """What ``Store.load()`` returns."""

    spec_text: str
    version: str
    state: Any  # ExperimentState
    runtime: Dict[str, Any]
    strategy_seq: int  # the snapshot was taken after this strategy call (-1: none)
    strategy_state: Optional[Dict[str, Any]]
    generation: int = 0
    saved_at: float = 0.0
    file: str = ""
    warnings: List[str] = field(default_factory=list)
