"""What rank 0 and the worker groups say to each other: small frozen dataclasses.

Rank 0 to a group: :class:`RunTrial`, :class:`Flush` (send your in-flight state and give the
trial back: a signal came), :class:`Decision` (stop the trial early: sent only when a stopper
says so after a :class:`Progress` report; the group does not wait for it), :class:`Heartbeat`
(rank 0 is alive; sent to idle groups) and :class:`Stop`.

A group to rank 0: :class:`Ready` (set up, waiting for work), :class:`PrepareFailed` (a worker
rank could not set up: objective import, data, device; rank 0 ends the job, exit 2),
:class:`Progress` (the learning curve after each epoch, when a stopper watches the run),
:class:`Checkpointed` (a model state was written), :class:`Interrupted` (the trial was given
back after a Flush) and :class:`Result`.

Model states never travel in messages, only :class:`~nasrun.store.base.StateRef`\\ s.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from ..store.base import StateRef
from ..trial import Outcome, Suggestion


@dataclass(frozen=True)
class RunTrial:
    suggestion: Suggestion
    states: Tuple[StateRef, ...] = ()  # what to continue from, best first (the group tries in order)
    keep_state: bool = False  # write the final state (it may be promoted or exported)
    report_epochs: bool = False  # send Progress after each epoch (a stopper watches the run)


@dataclass(frozen=True)
class Flush:
    pass


@dataclass(frozen=True)
class Decision:
    trial_id: int
    stop: bool


@dataclass(frozen=True)
class Heartbeat:
    pass


@dataclass(frozen=True)
class Stop:
    pass


@dataclass(frozen=True)
class Ready:
    group: int


@dataclass(frozen=True)
class PrepareFailed:
    """Sent by any worker rank (not only a leader) that failed before it could say Ready."""

    group: int
    rank: int  # the world rank that failed
    host: str
    error: str  # one line, cut short


@dataclass(frozen=True)
class Progress:
    """A trial's metrics after ``epoch``: ``curve`` holds every epoch's so far, oldest first
    (those of the checkpoint it continued from too), so rank 0 keeps nothing per trial."""

    group: int
    trial_id: int
    epoch: int
    curve: Tuple[Dict[str, float], ...] = ()


@dataclass(frozen=True)
class Checkpointed:
    group: int
    ref: StateRef


@dataclass(frozen=True)
class Interrupted:
    group: int
    trial_id: int


@dataclass(frozen=True)
class Result:
    group: int
    outcome: Outcome
    state: Optional[StateRef] = None  # the final state, when it was asked for
    note: str = ""  # what the group had to do about the states it was given (damaged, missing)
