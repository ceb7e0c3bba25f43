"""Rank 0's loop, the one scheduling core: ask, dispatch, receive, tell, log, commit.

The same driver runs over MPI (:class:`~nasrun.runtime.transport.MpiTransport`), over N groups
in one process (:class:`~nasrun.runtime.local.LocalTransport`: the simulator, the Python API,
tests) and on simulated groups with a virtual clock. An idle group gets the next ``ask()`` at
once; results are told as they arrive; no group waits for another. ``WAIT`` leaves groups idle
until a result comes; ``FINISHED`` or the budget (``max_trials`` finished trials,
``max_seconds`` of run time summed over jobs, ``max_epochs`` of training work, or ``target``
reached) stops dispatching, and the run ends when the trials in flight have finished.

Every change is an event logged to the store at once (a finished trial before its group gets
new work); the store commits at most every ``checkpoint.every_seconds`` (and when many events
or much strategy work piled up), with a strategy snapshot when one is due (the store replays
the strategy calls after it on resume).

The end of a run cannot miss a group: idle groups and groups still starting are told to stop
as soon as the search ends, busy ones when their trial is in; with worker processes rank 0
waits at most ``resources.shutdown_grace`` seconds for a group that has not started yet, then
ends the job. On SIGTERM/SIGUSR1 it asks the busy groups for their in-flight state, commits,
stops the workers and raises :class:`~nasrun.errors.Resumable` (exit 75); a second signal stops
waiting for the groups.

Model states: the groups write them; rank 0 only keeps references and deletes a state as soon
as nothing can use it: an in-flight trial keeps its two newest checkpoints, a finished one its
final state while the strategy may still promote it (``Strategy.promotable``), while a trial
in flight continues from it, or while it is among the ``checkpoint.keep_best`` best.
"""
from __future__ import annotations

import collections
import heapq
import math
import os
import random
import signal
import sys
import threading
import time
from typing import Any, Callable, DefaultDict, Deque, Dict, List, Optional, Set, Tuple

import numpy as np

from .. import __version__
from ..errors import CheckpointError, NasrunError, Resumable, RunFailed, UserInputError
from ..store import events as ev
from ..store.base import Loaded, Store, TrialRecord
from ..store.replay import calls_after, restore_strategy
from ..trial import FAILED, FINISHED, WAIT, Outcome, Suggestion
from ..view import ExperimentView
from . import messages as m
from .signals import take_early
from .transport import Transport

MAX_PENDING_EVENTS = 10_000  # commit when this many events were logged since the last commit
SNAPSHOT_CPU = 1.0  # strategy CPU seconds between snapshots (at least 10x a snapshot's cost)


def full_epochs(spec) -> float:
    """The objective's full training budget in epochs (what a trial without a budget trains)."""
    o = spec.objective
    if o.type == "table":
        return 200.0
    fid = getattr(o, "fidelity", None)
    if fid is not None and getattr(fid, "max", None) is not None:
        return float(fid.max)
    return float(o.epochs)


class Driver:
    def __init__(self, spec, spec_text: str, store: Store, transport: Transport,
                 loaded: Optional[Loaded] = None, echo: Optional[Callable[[str], None]] = None,
                 progress: bool = True, flush_timeout: float = 120.0):
        self.spec, self.spec_text, self.store, self.t = spec, spec_text, store, transport
        self.clock = transport.clock
        self.view = ExperimentView.from_spec(spec)
        self.metric, self.mode = spec.objective.metric, spec.objective.mode
        self.strategy = spec.make_strategy()
        self.stopper = _make_stopper(spec)
        self.loaded = loaded
        self.echo = echo if echo is not None else (lambda line: print(line, flush=True))
        self.progress_enabled = progress
        self.flush_timeout = flush_timeout
        self.full_epochs = full_epochs(spec)
        self.signals = 0
        self.queue: Deque[int] = collections.deque()  # live trials to (re)dispatch first
        self.best: Optional[Tuple[Tuple[float, float, int], TrialRecord]] = None
        self.keep: List[Tuple[Tuple[float, float, int], int]] = []  # keep_best holders, best first
        self.budget_of: Dict[int, float] = {}  # finished multi-fidelity trials: epochs reached
        self.work = 0.0  # epochs trained by finished trials (budget.max_epochs)
        self.reserved: Dict[int, float] = {}  # epochs the trials in flight will train
        self.parents: Dict[int, int] = {}  # live trial -> the finished trial it continues
        self.cpu: DefaultDict[str, float] = collections.defaultdict(float)  # seconds of rank-0 work by kind
        self.commits = 0
        self.dispatched = 0
        self.elapsed_before = 0.0
        self._strategy_cpu = 0.0  # since the last strategy snapshot
        self._snapshot_cost = 0.0
        self._last_commit = -math.inf
        self._mean_trial: Optional[float] = None
        self._rngs: Optional[Tuple[float, list, list]] = None
        self._prog: Any = None
        self.retired: Set[int] = set()
        self.busy: Dict[int, int] = {}
        self.replayed = 0

    # -- restore ----------------------------------------------------------------------------
    def _restore(self, loaded: Loaded) -> None:
        st = loaded.state
        stopper_state = None
        if loaded.strategy_state is not None and "stopper" in loaded.strategy_state:
            loaded.strategy_state = dict(loaded.strategy_state)
            stopper_state = loaded.strategy_state.pop("stopper")
        self.replayed = restore_strategy(self.strategy, loaded)
        if self.stopper is not None:
            self._restore_stopper(loaded, stopper_state)
        rt = loaded.runtime or {}
        try:  # a forged or foreign runtime state is a damaged checkpoint, not a traceback
            self.elapsed_before = max(float(rt.get("elapsed_seconds", 0.0)), st.elapsed)
            if not math.isfinite(self.elapsed_before):
                raise ValueError(f"elapsed_seconds is {self.elapsed_before}")
            if "python_rng" in rt:
                random.setstate((int(rt["python_rng"][0]), tuple(int(x) for x in rt["python_rng"][1]),
                                 rt["python_rng"][2]))
            if "numpy_rng" in rt:
                name, keys, pos, has_gauss, cached = rt["numpy_rng"]
                np.random.set_state((str(name), np.asarray(keys, dtype=np.uint32), int(pos),
                                     int(has_gauss), float(cached)))
        except (TypeError, ValueError, IndexError, KeyError, AttributeError, OverflowError) as e:
            raise CheckpointError(f"the checkpoint's runtime state cannot be restored "
                                  f"({type(e).__name__}: {str(e)[:200]})") from None
        top = self.view.top_of_state(st, 1)
        if top:
            key = self.view.key(top[0])
            assert key is not None  # top_of_state holds scored finished trials only
            self.best = (key, top[0])
        finished_with_state = {tid for tid in st.refs if tid not in st.live}
        if self.strategy.multi_fidelity:
            self.budget_of = self._reached_of_table(st)
        if finished_with_state:
            for rec in self._finished(st, finished_with_state):
                k = self.view.key(rec)
                if k is not None:
                    self.keep.append((k, rec.trial_id))
            self.keep.sort(reverse=True)
        self.work = self._work_of_table(st)
        for rec in sorted(st.live.values(), key=lambda r: r.trial_id):
            self.queue.append(rec.trial_id)
            if rec.suggestion.resume_from is not None:
                self.parents[rec.trial_id] = rec.suggestion.resume_from

    def _restore_stopper(self, loaded: Loaded, state: Optional[Dict[str, Any]]) -> None:
        """The stopper as of the strategy snapshot (its state is saved with it), then told the
        trials that finished after it, in the order they finished: exactly the uninterrupted
        stopper (a snapshot without a stopper's state, or none: every finished trial)."""
        seq0 = loaded.strategy_seq
        if state is not None:
            try:
                self.stopper.load_state_dict(state)
            except Exception as e:  # a forged or foreign state: say so instead of a traceback
                raise CheckpointError(f"the checkpoint's stopper state cannot be restored "
                                      f"({type(e).__name__}: {e})") from None
        else:
            seq0 = -1
        for _seq, kind, outcome in calls_after(loaded, seq0):
            if kind == "tell":
                self._observe(outcome)

    @staticmethod
    def _finished(st, ids: Optional[Set[int]]) -> List[TrialRecord]:
        """Finished trials of a loaded state: all of them, or those with an id in ``ids``
        (found through the id columns: no record is built for the others)."""
        if ids is None:
            return list(st.finished_records())
        out = [r for r in st.fresh if r.trial_id in ids]
        if st.table is not None:
            for block in st.table.blocks:
                hit = np.flatnonzero(np.isin(np.asarray(block.cols["id"]), list(ids)))
                out += block.records(hit)
        return out

    def _reached_of_table(self, st) -> Dict[int, float]:
        """Epochs reached by every finished trial (multi-fidelity: what a promotion continues)."""
        out: Dict[int, float] = {}
        if st.table is not None:
            for block in st.table.blocks:
                c = block.cols
                b = np.asarray(c["budget"], dtype=float)
                stopped = np.asarray(c["stopped_at"])
                reach = np.where(stopped >= 0, stopped, np.where(np.isnan(b), self.full_epochs, b))
                out.update(zip(np.asarray(c["id"]).tolist(), reach.tolist()))
        for rec in st.fresh:
            out[rec.trial_id] = self._epochs_reached(rec)
        return out

    def _work_of_table(self, st) -> float:
        total = 0.0
        for rec in st.fresh:
            total += self._work(rec)
        if st.table is not None:
            for block in st.table.blocks:
                c = block.cols
                b = np.asarray(c["budget"], dtype=float)
                stopped = np.asarray(c["stopped_at"])
                reach = np.where(stopped >= 0, stopped, np.where(np.isnan(b), self.full_epochs, b))
                before = np.zeros(len(b))
                rf = np.asarray(c["resume_from"])
                for i in np.flatnonzero(rf >= 0):
                    before[i] = self.budget_of.get(int(rf[i]), 0.0)
                total += float(np.sum(np.maximum(0.0, reach - before)))
        return total

    def _epochs_reached(self, rec: TrialRecord) -> float:
        o = rec.outcome
        if o is not None and o.stopped_at is not None:
            return float(o.stopped_at)
        b = rec.suggestion.budget
        return self.full_epochs if b is None else float(b)

    def _work(self, rec: TrialRecord) -> float:
        rf = rec.suggestion.resume_from
        before = self.budget_of.get(rf, 0.0) if rf is not None else 0.0
        return max(0.0, self._epochs_reached(rec) - before)

    # -- runtime state ------------------------------------------------------------------------
    def _global_rngs(self) -> Tuple[list, list]:
        """Rank 0's global Python and numpy RNG states, read at most once a second (reading them
        costs ~50 us; nasrun's rank-0 code never draws from them)."""
        now = time.monotonic()
        if self._rngs is None or now - self._rngs[0] >= 1.0:
            st = random.getstate()
            self._rngs = (now, [st[0], np.array(st[1], dtype=np.uint32), st[2]], _numpy_rng())
        return self._rngs[1], self._rngs[2]

    def runtime_state(self) -> Dict[str, Any]:
        python_rng, numpy_rng = self._global_rngs()
        return {"elapsed_seconds": self.elapsed(), "python_rng": python_rng, "numpy_rng": numpy_rng,
                "work_epochs": self.work}

    def commit(self, snapshot: bool = False) -> None:
        """Commit the logged events; with a strategy snapshot when asked or when due."""
        t0 = time.perf_counter()
        st = self.store.state
        strat = None
        if snapshot or self._strategy_cpu >= max(SNAPSHOT_CPU, 10 * self._snapshot_cost):
            s0 = time.perf_counter()
            snap = self.strategy.state_dict()
            if self.stopper is not None:  # restored with the strategy (Driver._restore_stopper)
                snap = {**snap, "stopper": self.stopper.state_dict()}
            strat = (st.next_seq - 1, snap)
            self._strategy_cpu = 0.0
        self.store.commit(self.runtime_state(), strat)
        if strat is not None:
            self._snapshot_cost = time.perf_counter() - s0
        self.commits += 1
        self._last_commit = self.clock.monotonic()
        self.cpu["commit"] += time.perf_counter() - t0

    def _maybe_commit(self) -> None:
        if not self.store.pending_events:
            return
        if (self.clock.monotonic() - self._last_commit >= self.spec.checkpoint.every_seconds
                or self.store.pending_events >= MAX_PENDING_EVENTS
                or self._strategy_cpu >= max(SNAPSHOT_CPU, 10 * self._snapshot_cost)):
            self.commit()

    def log(self, event: Any) -> None:
        t0 = time.perf_counter()
        self.store.log(event)
        self.cpu["log"] += time.perf_counter() - t0

    # -- budget ---------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self.elapsed_before + self.clock.monotonic() - self._t0

    def finished_count(self) -> int:
        return self.store.state.finished

    def stop_reason(self) -> Optional[str]:
        b = self.spec.budget
        if b.max_trials is not None and self.finished_count() >= b.max_trials:
            return f"max_trials ({b.max_trials}) reached"
        if b.max_seconds is not None and self.elapsed() >= b.max_seconds:
            return f"max_seconds ({b.max_seconds:g}) reached"
        if getattr(b, "max_epochs", None) is not None and self.work >= b.max_epochs:
            return f"max_epochs ({b.max_epochs:g}) reached"
        if b.target is not None and self.best is not None:
            v = self._best_value()
            if v is not None and ((v >= b.target) if self.mode == "max" else (v <= b.target)):
                return f"target {self.metric} {b.target:g} reached by trial {self.best[1].trial_id}"
        return None

    def _room(self, busy: int) -> bool:
        """Whether the budget leaves room for one more trial in flight."""
        b = self.spec.budget
        if b.max_trials is not None and self.finished_count() + busy >= b.max_trials:
            return False
        if getattr(b, "max_epochs", None) is not None \
                and self.work + sum(self.reserved.values()) >= b.max_epochs:
            return False
        return True

    # -- the loop -------------------------------------------------------------------------
    def _on_signal(self, signum, frame) -> None:
        self.signals += 1

    def run(self) -> Dict[str, Any]:
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGUSR1):
                handlers[sig] = signal.signal(sig, self._on_signal)
            self.signals += take_early()
        self.t.should_flush = lambda: self.signals > 0
        self.t.on_progress = self._on_progress
        self.store.begin(self.spec_text, __version__, self.loaded, self.metric, self.mode)
        try:
            if self.loaded is not None:
                self._restore(self.loaded)
                self.loaded.state.forget_table()
                self.loaded = None
            self._t0 = self.clock.monotonic()
            self.commit(snapshot=True)  # opens the journal; the restored strategy as a snapshot
            job = os.environ.get("SLURM_JOB_ID")
            if job:
                self.log(ev.JobStarted(job))
            if hasattr(self.store, "prune_states"):
                self.store.prune_states()  # leftovers of a killed run: no group writes yet
            self._fail_exhausted()
            with self._progress() as self._prog:
                return self._loop()
        finally:
            self.store.close()
            for sig, h in handlers.items():
                signal.signal(sig, h)

    def _fail_exhausted(self) -> None:
        """Trials in flight when their rank died (or the job was killed) max_attempts times."""
        limit = self.spec.resources.max_attempts
        st = self.store.state
        for tid in list(self.queue):
            rec = st.live[tid]
            if rec.attempts >= limit:
                self.queue.remove(tid)
                o = Outcome.failure(tid, f"the rank died (or the job was killed) while this trial "
                                         f"ran, {rec.attempts} times (resources.max_attempts: "
                                         f"{limit}); it is not tried again")
                self._finish(rec.group if rec.group is not None else -1, o, None, "")

    def _progress(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        b = self.spec.budget
        prog = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), disable=not self.progress_enabled, transient=True)
        self._task = prog.add_task("trials", total=b.max_trials, completed=self.finished_count())
        return prog

    def _print(self, line: str) -> None:
        if self.progress_enabled and self._prog is not None and self._prog.live.is_started:
            self._prog.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            self.echo(line)

    def _loop(self) -> Dict[str, Any]:
        r = self.spec.resources
        limit = r.trial_time_limit
        idle: List[int] = []
        busy: Dict[int, int] = {}  # group -> trial id
        started: Dict[int, float] = {}
        deadlines: List[Tuple[float, int, int]] = []
        not_ready: Set[int] = set(range(self.t.groups))
        told_stop: Set[int] = set()
        strategy_done, reason = False, None
        hb_every = min(60.0, r.orphan_timeout / 4)
        last_hb = self.clock.monotonic()
        self.busy = busy
        while True:
            if self.signals:
                self._checkpoint_and_exit(busy)
            reason = self.stop_reason() or ("the strategy has finished" if strategy_done else None)
            waiting = False
            while idle and reason is None and self._room(len(busy)):
                s = self._next()
                if s is WAIT:
                    waiting = True
                    break
                if s is FINISHED:
                    strategy_done, reason = True, "the strategy has finished"
                    break
                g = heapq.heappop(idle)
                self._dispatch(g, s)
                busy[g] = s.trial_id
                started[g] = self.clock.monotonic()
                if limit is not None:
                    heapq.heappush(deadlines, (started[g] + limit + max(30.0, 0.5 * limit), g,
                                               s.trial_id))
            if reason is not None:
                for g in list(idle) + sorted(not_ready - told_stop):
                    if g not in told_stop:
                        self.t.send(g, m.Stop())
                        told_stop.add(g)
                idle.clear()
            self._maybe_commit()
            if not busy:
                if reason is not None:
                    break
                if waiting:
                    raise RunFailed("the strategy answered WAIT with no trial in flight: it would "
                                    "wait forever")
                if len(self.retired) >= self.t.groups:
                    self._end_hung(RunFailed("no worker group is left (every group hung past its "
                                             "time limit)"))
            t0 = time.perf_counter()
            msgs = self.t.poll(0.1, self._spin(len(busy)))
            self.cpu["poll"] += time.perf_counter() - t0
            for msg in msgs:
                g = msg.group
                if isinstance(msg, m.PrepareFailed):
                    self._prepare_failed(msg, busy)
                if isinstance(msg, m.Ready):
                    not_ready.discard(g)
                    if reason is not None or g in told_stop:
                        if g not in told_stop:
                            self.t.send(g, m.Stop())
                            told_stop.add(g)
                    else:
                        heapq.heappush(idle, g)
                elif isinstance(msg, m.Checkpointed):
                    self._checkpointed(msg.ref)
                elif isinstance(msg, m.Progress):
                    # the group goes on training; it reads a stop between its steps
                    if busy.get(g) == msg.trial_id and self._on_progress(msg) \
                            and self.t.decisions_by_message:
                        self.t.send(g, m.Decision(msg.trial_id, True))
                elif isinstance(msg, m.Result):
                    if busy.get(g) != msg.outcome.trial_id:
                        continue  # a retired group answering late
                    busy.pop(g)
                    self._finish(g, msg.outcome, msg.state, msg.note, started.pop(g, None))
                    heapq.heappush(idle, g)
                elif isinstance(msg, m.Interrupted):  # only after a flush; the trial stays in flight
                    busy.pop(g, None)
                    heapq.heappush(idle, g)
            now = self.clock.monotonic()
            while deadlines and deadlines[0][0] <= now:
                _, g, tid = heapq.heappop(deadlines)
                if busy.get(g) == tid:
                    busy.pop(g)
                    self.retired.add(g)
                    self._finish(g, Outcome.failure(tid, f"time limit ({limit:g}s) exceeded and "
                                                         f"group {g} does not answer; the group "
                                                         "is retired"), None, "")
            if self.t.heartbeats and now - last_hb >= hb_every:
                for g in idle:
                    self.t.send(g, m.Heartbeat())
                last_hb = now
        if self.t.heartbeats:
            self._await_starting(not_ready, told_stop)
        self.commit(snapshot=True)
        if self.retired:
            self.echo(f"nasrun: {len(self.retired)} hung group(s); ending the job with MPI_Abort")
            self.t.abort(1)
        best = self.best[1] if self.best else None
        bv = self._best_value()
        self._print(f"finished ({reason}): {self.finished_count()} trials, {self.store.state.failed} "
                    f"failed, best {self.metric} {bv if bv is None else f'{bv:.4f}'}"
                    f"{f' (trial {best.trial_id})' if best else ''}, {self.elapsed():.1f}s, "
                    f"rank 0 peak memory {peak_rss_mb():.0f} MB")
        return {"reason": reason, "best": best, "trials": self.finished_count(),
                "failed": self.store.state.failed, "stats": self.stats()}

    def _await_starting(self, not_ready: Set[int], told_stop: Set[int]) -> None:
        """Groups still starting were sent Stop; wait (bounded) until they have read it."""
        grace = self.spec.resources.shutdown_grace
        end = time.monotonic() + grace
        while not_ready and time.monotonic() < end and not self.signals:
            for msg in self.t.poll(0.2):
                if isinstance(msg, m.PrepareFailed):
                    self._prepare_failed(msg, {})
                if isinstance(msg, m.Ready):
                    not_ready.discard(msg.group)
                    if msg.group not in told_stop:
                        self.t.send(msg.group, m.Stop())
                        told_stop.add(msg.group)
        if not_ready:
            self.commit(snapshot=True)
            self.echo(f"nasrun: worker group(s) {sorted(not_ready)} did not start within "
                      f"resources.shutdown_grace ({grace:g} s) of the end; ending the job with "
                      "MPI_Abort (the checkpoint is complete)")
            self.t.abort(0)

    def _prepare_failed(self, msg: m.PrepareFailed, busy: Dict[int, int]) -> None:
        """A worker rank could not set up (objective import, data, device): every group would
        fail the same way or wait for it. Save the trials in flight (bounded), commit and end
        the job with exit 2 (MPI_Abort: the failed rank cannot take part in a clean exit)."""
        error = UserInputError(f"worker rank {msg.rank} (group {msg.group}, host {msg.host}) could "
                               f"not prepare: {msg.error}")
        self.echo(f"nasrun: error: {error}; stopping all worker groups")
        self._flush_groups(busy, timeout=min(self.flush_timeout, 30.0))
        self.commit(snapshot=True)
        self.echo(f"nasrun: checkpoint saved; ending the job with MPI_Abort (exit "
                  f"{error.exit_code})")
        self.t.abort(error.exit_code)
        raise error

    def _end_hung(self, error: NasrunError) -> None:
        self.commit(snapshot=True)
        self.echo(f"nasrun: {error}; ending the job with MPI_Abort")
        self.t.abort(error.exit_code)
        raise error

    def _spin(self, busy: int) -> float:
        """How long rank 0 may busy-wait for the next result: twice the expected time to the
        next one, at most 2.5 ms, when that is under 20 ms (short trials skip a sleep's latency)."""
        if not busy or self._mean_trial is None:
            return 0.0
        expected = self._mean_trial / busy
        return min(0.0025, 2.0 * expected) if expected < 0.02 else 0.0

    # -- trials ---------------------------------------------------------------------------
    def _next(self):
        """The next trial to run: a queued live trial, else a new ask (logged)."""
        st = self.store.state
        if self.queue:
            return st.live[self.queue.popleft()].suggestion
        seq = st.next_seq
        t0 = time.perf_counter()
        s = self.strategy.ask()
        dt = time.perf_counter() - t0
        self.cpu["ask"] += dt
        self._strategy_cpu += dt
        if isinstance(s, Suggestion):
            self.log(ev.Asked(seq, s))
            if s.resume_from is not None:
                self.parents[s.trial_id] = s.resume_from
        return s

    def _dispatch(self, group: int, s: Suggestion) -> None:
        st = self.store.state
        self.log(ev.Started(s.trial_id, group, self.clock.time()))
        own = list(reversed(st.refs.get(s.trial_id, [])))
        parent = list(reversed(st.refs.get(s.resume_from, []))) if s.resume_from is not None else []
        keep = self.strategy.multi_fidelity or self.spec.checkpoint.keep_best > 0
        self.t.send(group, m.RunTrial(s, tuple(own + parent), bool(keep), self.stopper is not None))
        start_epoch = own[0].epoch if own else (self.budget_of.get(s.resume_from, 0.0)
                                                if s.resume_from is not None else 0.0)
        target = self.full_epochs if s.budget is None else float(s.budget)
        self.reserved[s.trial_id] = max(0.0, target - start_epoch)
        self.dispatched += 1

    def _checkpointed(self, ref) -> None:
        st = self.store.state
        if ref.trial_id not in st.live:
            self.store.states.delete(ref)  # a late state of a trial that has ended
            return
        self.log(ev.StateSaved(ref))
        kept = st.refs.get(ref.trial_id, [])
        for old in kept[:-2]:  # an in-flight trial keeps its two newest states
            self._drop(old)

    def _drop(self, ref) -> None:
        self.log(ev.StateDropped(ref))
        self.store.states.delete(ref)

    def _valid(self, outcome: Outcome) -> Outcome:
        """A trial whose main metric is missing or not finite failed (it counts as a failure)."""
        if outcome.ok and outcome.value(self.metric) is None:
            v = outcome.metrics.get(self.metric)
            why = "is missing" if v is None else f"is not finite ({v})"
            return Outcome(outcome.trial_id, FAILED, outcome.metrics, outcome.curve,
                           f"the objective's metric {self.metric!r} {why}", outcome.stopped_at)
        return outcome

    def _finish(self, group: int, outcome: Outcome, state, note: str,
                started: Optional[float] = None) -> None:
        st = self.store.state
        outcome = self._valid(outcome)
        tid = outcome.trial_id
        rec = st.live[tid]
        seq = st.next_seq
        t0 = time.perf_counter()
        self.strategy.tell(outcome)
        dt = time.perf_counter() - t0
        self.cpu["tell"] += dt
        self._strategy_cpu += dt
        for old in list(st.refs.get(tid, [])):  # in-flight checkpoints are not needed any more
            if state is None or old.file != state.file:
                self._drop(old)
        if state is not None:
            self.log(ev.StateSaved(state))
        self.log(ev.Finished(seq, outcome, self.clock.time(), st.jobs[-1] if st.jobs else None,
                             self.elapsed()))
        self.reserved.pop(tid, None)
        self.parents.pop(tid, None)
        if self.strategy.multi_fidelity:
            self.budget_of[tid] = self._epochs_reached(rec)
        self.work += self._work(rec)
        key = self.view.key(rec)
        if key is not None and (self.best is None or key > self.best[0]):
            self.best = (key, rec)
        if self.stopper is not None:
            self._observe(outcome)
        if state is not None and key is not None:
            self.keep.append((key, tid))
            self.keep.sort(reverse=True)
        self._retain()
        dur = (rec.end - rec.start) if rec.start is not None and rec.end is not None else 0.0
        if started is not None:
            wall = self.clock.monotonic() - started
            self._mean_trial = wall if self._mean_trial is None else 0.9 * self._mean_trial + 0.1 * wall
        self._report(rec, group, dur, note)
        if os.environ.get("NASRUN_TEST_DRIVER_BUG") == str(tid):  # test hook: a bug on rank 0
            raise RuntimeError(f"NASRUN_TEST_DRIVER_BUG: a planted bug after trial {tid}")
        cap = self.spec.resources.max_consecutive_failures
        if st.consecutive_failures >= cap:
            self.commit(snapshot=True)
            self._stop_everything()
            raise RunFailed(f"{cap} consecutive trials failed (resources.max_consecutive_failures); "
                            f"the last error (trial {tid}):\n{outcome.error}")

    def _retain(self) -> None:
        """Delete the final states no decision can use any more."""
        st = self.store.state
        k = self.spec.checkpoint.keep_best
        best_k = {tid for _, tid in self.keep[:k]}
        self.keep = [(kk, tid) for kk, tid in self.keep if tid in best_k or tid in st.refs]
        live_parents = set(self.parents.values())
        for tid in [t for t in st.refs if t not in st.live]:
            if tid in best_k or tid in live_parents or self.strategy.promotable(tid):
                continue
            for ref in list(st.refs.get(tid, [])):
                self._drop(ref)
        self.keep = [(kk, tid) for kk, tid in self.keep if tid in st.refs]

    def _best_value(self) -> Optional[float]:
        """The main metric of the best trial so far (None before there is one)."""
        if self.best is None:
            return None
        o = self.best[1].outcome
        assert o is not None  # only a scored finished trial becomes the best
        return o.value(self.metric)

    def _report(self, rec: TrialRecord, group: int, dur: float, note: str) -> None:
        o = rec.outcome
        assert o is not None  # reported once the trial is finished
        mt = self.spec.budget.max_trials
        count = f"[{self.finished_count()}/{mt}] " if mt else f"[{self.finished_count()}] "
        bv = self._best_value()
        bs = "-" if bv is None else f"{bv:.4f}"
        extra = f" | stopped after epoch {o.stopped_at}" if o.stopped_at is not None else ""
        if o.ok:
            v = o.value(self.metric)
            line = (f"{count}trial {rec.trial_id:4d} | group {group} | {self.metric} "
                    f"{'nan' if v is None else f'{v:.4f}'} | best {bs} | {dur:.1f}s{extra}")
        else:
            err = (o.error or "").rstrip()
            line = (f"{count}trial {rec.trial_id:4d} | group {group} | FAILED | best {bs} | {dur:.1f}s\n"
                    + "\n".join("    " + ln for ln in err.splitlines()))
        if note:
            line += f"\n    note: {note}"
        self._print(line)
        if self.progress_enabled and self._prog is not None:
            self._prog.update(self._task, completed=self.finished_count())

    # -- stoppers -------------------------------------------------------------------------
    def _scores_of_curve(self, curve) -> List[Optional[float]]:
        sign = 1.0 if self.mode == "max" else -1.0
        out: List[Optional[float]] = []
        for p in curve:
            v = p.get(self.metric)
            out.append(sign * float(v) if v is not None and math.isfinite(float(v)) else None)
        return out

    def _observe(self, outcome: Outcome) -> None:
        """Tell the stopper a finished trial (a failure is no information)."""
        self.stopper.finished(outcome.trial_id,
                              self._scores_of_curve(outcome.curve) if outcome.ok else None,
                              stopped=outcome.stopped_at is not None)

    def _on_progress(self, msg: m.Progress) -> bool:
        """Whether the trial of a Progress report should stop (asks the stopper)."""
        if self.stopper is None:
            return False
        t0 = time.perf_counter()
        stop = bool(self.stopper.should_stop(msg.trial_id, self._scores_of_curve(msg.curve)))
        self.cpu["stopper"] += time.perf_counter() - t0
        return stop

    # -- ending ---------------------------------------------------------------------------
    def _stop_everything(self) -> None:
        self._flush_groups(dict(self.busy))
        for g in range(self.t.groups):
            if g not in self.retired:
                self.t.send(g, m.Stop())

    def _flush_groups(self, busy: Dict[int, int], timeout: Optional[float] = None) -> Set[int]:
        """Ask busy groups for their in-flight state; the groups that did not answer within
        ``timeout`` (default: flush_timeout)."""
        busy = dict(busy)
        for g in busy:
            self.t.send(g, m.Flush())
        first = self.signals
        end = time.monotonic() + (self.flush_timeout if timeout is None else timeout)
        while busy and time.monotonic() < end and self.signals <= max(first, 1):
            for msg in self.t.poll(0.1):
                g = msg.group
                if isinstance(msg, m.Checkpointed):
                    self._checkpointed(msg.ref)
                elif isinstance(msg, m.Interrupted):
                    if busy.pop(g, None) is not None:
                        self.log(ev.Interrupted(msg.trial_id))
                        self.reserved.pop(msg.trial_id, None)
                elif isinstance(msg, m.Result):
                    if busy.get(g) == msg.outcome.trial_id:
                        busy.pop(g)
                        self._finish(g, msg.outcome, msg.state, msg.note)
        self.busy = {g: t for g, t in self.busy.items() if g in busy}
        return set(busy)

    def _checkpoint_and_exit(self, busy: Dict[int, int]) -> None:
        self._print(f"nasrun: signal received: saving the state of {len(busy)} trial(s) in flight")
        silent = self._flush_groups(busy)
        self.commit(snapshot=True)
        if silent or self.retired:
            self.echo("nasrun: checkpoint saved; some groups do not answer, aborting the job")
            self.t.abort(75)
        for g in range(self.t.groups):
            self.t.send(g, m.Stop())
        raise Resumable(f"checkpointed after a signal; continue with: nasrun resume "
                        f"{self.spec.experiment.directory}")

    def stats(self) -> Dict[str, Any]:
        n = max(1, self.dispatched)
        return {"dispatched": self.dispatched, "commits": self.commits, "peak_rss_mb": peak_rss_mb(),
                "cpu_seconds": dict(self.cpu), "cpu_per_trial_us": 1e6 * sum(self.cpu.values()) / n,
                "commits_per_trial": self.commits / n}


def _make_stopper(spec):
    choice = spec.strategy.stopper_choice
    if choice is None:
        return None
    from ..stoppers import make_stopper
    return make_stopper(choice.name, int(full_epochs(spec)), **dict(choice.options))


def peak_rss_mb() -> float:
    """This process's peak resident memory (MB; what the OS reports, 0 where it cannot)."""
    try:
        import resource
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, OSError):
        return 0.0
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2 ** 20


def _numpy_rng() -> list:
    # the 624-word key stays an array: the store writes it as a dataset, not as JSON numbers
    state = np.random.get_state()
    assert isinstance(state, tuple)  # legacy=True (the default): the tuple form
    name, keys, pos, has_gauss, cached = state
    return [name, keys.copy(), int(pos), int(has_gauss), float(cached)]
