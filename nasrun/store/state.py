"""The experiment as the events left it: live trials, finished trials, kept model states.

:class:`ExperimentState` is the one implementation of "what an event changes": the store
applies every logged event to its state (the writer's mirror), and loading a checkpoint
rebuilds the same state from the committed files plus the events logged after them.

Finished trials never change again, so they are kept apart: :class:`TrialTable` holds the
committed ones in columns (blocks read from segment files, decoded lazily), ``fresh`` the ones
finished since the last commit. A writer does not need the committed table once the driver
has restored itself (:meth:`ExperimentState.forget_table`): its memory then stays bounded by
the live trials.
"""
from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from ..trial import Outcome
from .base import DONE, FAILED, QUEUED, RUNNING, StateRef, TrialRecord
from .columns import Block
from .events import Asked, Event, Finished, Interrupted, JobStarted, Started, StateDropped, StateSaved


class EventError(ValueError):
    """An event that does not fit the state (a forged or damaged journal)."""


class TrialTable:
    """Committed finished trials, block by block (commit order)."""

    def __init__(self, blocks: Optional[List[Block]] = None):
        self.blocks: List[Block] = list(blocks or [])
        self._cache: Dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return sum(len(b) for b in self.blocks)

    def add(self, block: Block) -> None:
        self.blocks.append(block)
        self._cache.clear()

    def column(self, name: str) -> np.ndarray:
        """A numeric or status column over all blocks."""
        if name not in self._cache:
            parts = [np.asarray(b.cols[name]) for b in self.blocks]
            if parts:
                self._cache[name] = np.concatenate(parts)
            else:
                self._cache[name] = np.zeros(0, dtype="S8" if name == "status" else
                                             np.float64 if name in ("budget", "start", "end",
                                                                    "metric") else np.int64)
        return self._cache[name]

    def records(self) -> Iterator[TrialRecord]:
        for b in self.blocks:
            yield from b.records()

    def locate(self, i: int) -> Tuple[Block, int]:
        """(block, row) of global row ``i``."""
        for b in self.blocks:
            if i < len(b):
                return b, i
            i -= len(b)
        raise IndexError(i)

    def record(self, i: int) -> TrialRecord:
        b, j = self.locate(i)
        return b.record(j)


class ExperimentState:
    """Live trials (queued/running), finished trials, model-state references, counters."""

    def __init__(self) -> None:
        self.live: Dict[int, TrialRecord] = {}
        self.fresh: List[TrialRecord] = []  # finished since the last commit, in finish order
        self.table: Optional[TrialTable] = TrialTable()  # committed finished trials
        self.refs: Dict[int, List[StateRef]] = {}  # kept model states per trial, oldest first
        self.next_seq = 0  # number of the next strategy call
        self.next_id = 0  # one more than the largest trial id seen
        self.finished = 0  # done + failed
        self.failed = 0
        self.consecutive_failures = 0
        self.elapsed = 0.0
        self.jobs: List[str] = []

    # -- events --------------------------------------------------------------------------------
    def apply(self, ev: Event) -> None:
        if isinstance(ev, Asked):
            tid = ev.suggestion.trial_id
            if tid in self.live or tid < self.next_id:
                raise EventError(f"trial {tid} is asked twice")
            self.live[tid] = TrialRecord(ev.suggestion, QUEUED, ask_seq=ev.seq)
            self.next_id = tid + 1
            self.next_seq = max(self.next_seq, ev.seq + 1)
        elif isinstance(ev, Started):
            rec = self._live(ev.trial_id)
            rec.status, rec.group, rec.start = RUNNING, ev.group, ev.start
            rec.attempts += 1
        elif isinstance(ev, Finished):
            o: Outcome = ev.outcome
            if o.trial_id not in self.live:
                raise EventError(f"trial {o.trial_id} finishes but is not in flight")
            rec = self.live.pop(o.trial_id)
            rec.status = DONE if o.ok else FAILED
            rec.outcome, rec.end, rec.job_id, rec.tell_seq = o, ev.end, ev.job_id, ev.seq
            if rec.start is None:
                rec.start = ev.end
            self.fresh.append(rec)
            self.finished += 1
            self.failed += not o.ok
            self.consecutive_failures = 0 if o.ok else self.consecutive_failures + 1
            self.elapsed = max(self.elapsed, ev.elapsed)
            self.next_seq = max(self.next_seq, ev.seq + 1)
        elif isinstance(ev, Interrupted):
            rec = self._live(ev.trial_id)
            rec.status, rec.group = QUEUED, None
            rec.attempts = max(0, rec.attempts - 1)  # a clean interruption is not a lost attempt
        elif isinstance(ev, StateSaved):
            kept = self.refs.setdefault(ev.ref.trial_id, [])
            if all(r.file != ev.ref.file for r in kept):
                kept.append(ev.ref)
        elif isinstance(ev, StateDropped):
            kept = [r for r in self.refs.get(ev.ref.trial_id, []) if r.file != ev.ref.file]
            if kept:
                self.refs[ev.ref.trial_id] = kept
            else:
                self.refs.pop(ev.ref.trial_id, None)
        elif isinstance(ev, JobStarted):
            if not self.jobs or self.jobs[-1] != ev.job_id:
                self.jobs.append(ev.job_id)
        else:
            raise EventError(f"not an event: {ev!r}")

    def _live(self, tid: int) -> TrialRecord:
        rec = self.live.get(tid)
        if rec is None:
            raise EventError(f"trial {tid} is not in flight")
        return rec

    # -- reading -------------------------------------------------------------------------------
    def finished_records(self) -> Iterator[TrialRecord]:
        """Every finished trial: the committed table (when loaded) then the fresh ones."""
        if self.table is not None:
            yield from self.table.records()
        yield from self.fresh

    def all_records(self) -> List[TrialRecord]:
        """Every trial, in trial id order (readers: status, report, export)."""
        out = list(self.finished_records()) + list(self.live.values())
        out.sort(key=lambda r: r.trial_id)
        return out

    def forget_table(self) -> None:
        """Drop the committed rows from memory (the writer does not need them)."""
        self.table = None

    @property
    def statuses(self) -> Dict[str, int]:
        running = sum(r.status == RUNNING for r in self.live.values())
        return {DONE: self.finished - self.failed, FAILED: self.failed, RUNNING: running,
                QUEUED: len(self.live) - running}

    def counters(self) -> Dict[str, Any]:
        return {"next_seq": self.next_seq, "next_id": self.next_id, "finished": self.finished,
                "failed": self.failed, "consecutive_failures": self.consecutive_failures,
                "elapsed": self.elapsed, "jobs": list(self.jobs)}

    def set_counters(self, c: Dict[str, Any]) -> None:
        self.next_seq, self.next_id = int(c["next_seq"]), int(c["next_id"])
        self.finished, self.failed = int(c["finished"]), int(c["failed"])
        self.consecutive_failures = int(c["consecutive_failures"])
        self.elapsed = float(c["elapsed"])
        self.jobs = [str(j) for j in c["jobs"]]
