"""Rank 0's loop: ask, dispatch, receive, tell, checkpoint; asynchronous over worker groups.

An idle group gets the next ``ask()`` at once; results are told as they arrive; no group waits
for another. ``WAIT`` leaves groups idle until a result comes; ``FINISHED`` (or the budget:
``max_trials``, ``max_seconds`` of run time accumulated over jobs, or reaching ``target``) stops
dispatching, and the run ends when the trials in flight have finished.

After every finished trial (and at most every ``checkpoint.every_seconds`` when in-flight states
arrive) the driver saves a :class:`~nasrun.store.Snapshot`. On SIGTERM/SIGUSR1 it asks the busy
groups for their in-flight state, saves, stops the workers and raises
:class:`~nasrun.errors.Resumable` (exit 75); a second signal stops waiting for the groups.
"""
from __future__ import annotations

import math
import os
import random
import signal
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

import numpy as np

from .. import __version__
from ..errors import Resumable, RunFailed
from ..store.base import DONE, FAILED, QUEUED, RUNNING, ModelState, Snapshot, Store, TrialRecord
from ..trial import FINISHED, WAIT, Outcome, Suggestion
from .signals import take_early
from .transport import Transport


class Driver:
    def __init__(self, spec, spec_text: str, store: Store, transport: Transport,
                 snapshot: Optional[Snapshot] = None, echo: Optional[Callable[[str], None]] = None,
                 progress: bool = True, flush_timeout: float = 120.0):
        self.spec, self.spec_text, self.store, self.t = spec, spec_text, store, transport
        self.strategy = spec.make_strategy()
        self.records: Dict[int, TrialRecord] = {}
        self.models: Dict[int, ModelState] = {}
        self.queue: List[Suggestion] = []
        self.elapsed_before = 0.0
        self.jobs: List[str] = []
        self.counters = {"consecutive_failures": 0, "saves": 0}
        self._finished = 0  # trials done or failed; kept up to date so the loop is O(1) per trial
        self._best: Optional[tuple] = None  # (score, -trial_id, record) of the best scored trial
        self._ids_ascending, self._last_id = True, -1  # records inserted in trial id order?
        self._dirty = False  # a trial finished since the last save
        self.signals = 0
        self.flush_timeout = flush_timeout
        self.echo = echo or (lambda line: print(line, flush=True))
        self.progress_enabled = progress
        if snapshot is not None:
            self._restore(snapshot)
        job = os.environ.get("SLURM_JOB_ID")
        if job and (not self.jobs or self.jobs[-1] != job):  # a second run in the same job
            self.jobs.append(job)
        self.metric, self.mode = spec.objective.metric, spec.objective.mode
        self._t0 = time.monotonic()
        self._last_save = -math.inf
        self._mean_trial: Optional[float] = None  # moving average of trial durations (seconds)
        self._rngs: Optional[Tuple[float, list, list]] = None

    # -- snapshot -------------------------------------------------------------------------
    def _restore(self, snap: Snapshot) -> None:
        self.strategy.load_state_dict(snap.strategy_state)
        rt = snap.runtime_state or {}
        self.elapsed_before = float(rt.get("elapsed_seconds", 0.0))
        self.jobs = [str(j) for j in rt.get("jobs", rt.get("slurm_jobs", []))]
        self.counters.update(rt.get("counters", {}))
        if "python_rng" in rt:
            random.setstate((rt["python_rng"][0], tuple(int(x) for x in rt["python_rng"][1]),
                             rt["python_rng"][2]))
        if "numpy_rng" in rt:
            name, keys, pos, has_gauss, cached = rt["numpy_rng"]
            np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
        self.models = dict(snap.models)
        for r in snap.trials:
            if r.status in (RUNNING, QUEUED):
                r.status, r.group, r.start = QUEUED, None, None
                self.queue.append(r.suggestion)
            self._add_record(r)
            self._note_finished(r)

    def _global_rngs(self) -> Tuple[list, list]:
        """Rank 0's global Python and numpy RNG states, read at most once a second: reading them
        costs ~50 us, more than the rest of a no-op trial's dispatch, and nasrun's rank-0 code
        never draws from them (strategies own their generators, saved in their state)."""
        now = time.monotonic()
        if self._rngs is None or now - self._rngs[0] >= 1.0:
            st = random.getstate()
            self._rngs = (now, [st[0], np.array(st[1], dtype=np.uint32), st[2]], _numpy_rng())
        return self._rngs[1], self._rngs[2]

    def snapshot(self) -> Snapshot:
        python_rng, numpy_rng = self._global_rngs()
        rt = {"elapsed_seconds": self.elapsed(), "jobs": list(self.jobs),
              "counters": dict(self.counters), "python_rng": python_rng, "numpy_rng": numpy_rng}
        keep = (RUNNING, QUEUED, DONE) if self.strategy.multi_fidelity else (RUNNING, QUEUED)
        kept = self.best_finished()
        models = {tid: m for tid, m in self.models.items()
                  if tid in self.records and (self.records[tid].status in keep or tid in kept)}
        trials = (list(self.records.values()) if self._ids_ascending
                  else [self.records[k] for k in sorted(self.records)])
        return Snapshot(self.spec_text, __version__, trials,
                        self.strategy.state_dict(), rt, models)

    def save(self) -> None:
        self._dirty = False
        self.counters["saves"] += 1
        self.store.save(self.snapshot())
        self._last_save = time.monotonic()

    # -- budget ---------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self._t0

    def _add_record(self, rec: TrialRecord) -> None:
        if rec.trial_id < self._last_id:
            self._ids_ascending = False
        self._last_id = max(self._last_id, rec.trial_id)
        self.records[rec.trial_id] = rec

    def finished_count(self) -> int:
        return self._finished

    def best_finished(self) -> Set[int]:
        """The ``checkpoint.keep_best`` best finished trials (by the strategy's score: first
        objective, feasible only): their final weights stay in the store for ``nasrun export``."""
        k = self.spec.checkpoint.keep_best
        # a trial that was not among the best K when it finished never becomes so later, and
        # its state was evicted then: only trials holding a state can be among the best K
        scored = [(self.strategy.score(self.records[tid].outcome), -tid) for tid in self.models
                  if tid in self.records and self.records[tid].status == DONE
                  and self.records[tid].outcome is not None]
        return {-t for _, t in sorted((x for x in scored if x[0] is not None), reverse=True)[:k]}

    def _evict(self) -> None:
        """Drop final states that no longer rank among the best kept (bounded memory)."""
        if self.strategy.multi_fidelity:
            return
        keep = self.best_finished()
        for tid in [t for t in self.models if self.records.get(t) is not None
                    and self.records[t].status in (DONE, FAILED) and t not in keep]:
            del self.models[tid]

    def best(self) -> Optional[TrialRecord]:
        """The finished trial with the best score (the lowest trial id among equals)."""
        return self._best[2] if self._best is not None else None

    def _note_finished(self, rec: TrialRecord) -> None:
        """Count a record that just became done/failed and keep the best one."""
        if rec.status not in (DONE, FAILED):
            return
        self._finished += 1
        score = self.strategy.score(rec.outcome) if rec.outcome else None
        if score is not None and (self._best is None or (score, -rec.trial_id) > self._best[:2]):
            self._best = (score, -rec.trial_id, rec)

    def _spin(self, busy: int) -> float:
        """How long rank 0 may busy-wait for the next result: twice the expected time to the next
        one (recent mean trial time / groups busy), at most 2.5 ms, when that is under 20 ms.
        Short trials (a benchmark's no-op trials, fast table lookups) are then answered without
        a sleep's latency; real training trials (seconds to hours) leave rank 0 sleeping between
        probes."""
        if not busy or self._mean_trial is None:
            return 0.0
        expected = self._mean_trial / busy
        # durations are measured on rank 0 and include its own sleep latency (~1-5 ms), so the
        # threshold sits well above that, or slow answers would keep it from ever spinning
        return min(0.0025, 2.0 * expected) if expected < 0.02 else 0.0

    def stop_reason(self) -> Optional[str]:
        b = self.spec.budget
        if b.max_trials is not None and self.finished_count() >= b.max_trials:
            return f"max_trials ({b.max_trials}) reached"
        if b.max_seconds is not None and self.elapsed() >= b.max_seconds:
            return f"max_seconds ({b.max_seconds:g}) reached"
        best = self.best()
        if b.target is not None and best is not None:
            v = best.outcome.value(self.metric)
            if (v >= b.target) if self.mode == "max" else (v <= b.target):
                return f"target {self.metric} {b.target:g} reached by trial {best.trial_id}"
        return None

    # -- the loop -------------------------------------------------------------------------
    def _on_signal(self, signum, frame) -> None:
        self.signals += 1

    def run(self) -> Dict[str, Any]:
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGUSR1):
                handlers[sig] = signal.signal(sig, self._on_signal)
            self.signals += take_early()
        if hasattr(self.t, "should_flush"):
            self.t.should_flush = lambda: self.signals > 0
        try:
            with self._progress() as self._prog:
                return self._loop()
        finally:
            for sig, h in handlers.items():
                signal.signal(sig, h)

    def _progress(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        b = self.spec.budget
        total = b.max_trials if b.max_trials is not None else None
        prog = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), disable=not self.progress_enabled, transient=True)
        self._task = prog.add_task("trials", total=total, completed=self.finished_count())
        return prog

    def _print(self, line: str) -> None:
        if self.progress_enabled and self._prog.live.is_started:
            self._prog.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            self.echo(line)

    def _loop(self) -> Dict[str, Any]:
        limit = self.spec.resources.trial_time_limit
        idle: Set[int] = set()
        busy: Dict[int, int] = {}
        retired: Set[int] = set()
        started: Dict[int, float] = {}
        strategy_done, waiting = False, False
        reason = None
        while True:
            if self.signals:
                self._checkpoint_and_exit(busy, retired)
            reason = self.stop_reason() or ("the strategy has finished" if strategy_done else None)
            b = self.spec.budget
            waiting = False
            while idle and reason is None:
                if b.max_trials is not None and self.finished_count() + len(busy) >= b.max_trials:
                    break
                s = self.queue.pop(0) if self.queue else self.strategy.ask()
                if s is WAIT:
                    waiting = True
                    break
                if s is FINISHED:
                    strategy_done = True
                    reason = "the strategy has finished"
                    break
                g = min(idle)
                idle.discard(g)
                self._dispatch(g, s)
                busy[g] = s.trial_id
                started[g] = time.monotonic()
            if self._dirty:  # after handing out the next trials, so that no group waits for it
                self.save()
            if not busy:
                if reason is not None or (b.max_trials is not None and self.finished_count() >= b.max_trials):
                    break
                if waiting:
                    raise RunFailed("the strategy answered WAIT with no trial in flight: it would wait forever")
                if len(retired) >= self.t.groups:
                    raise RunFailed("no worker group is left (every group hung past its time limit)")
            for msg in self.t.poll(0.1, self._spin(len(busy))):
                g = msg.get("group")
                kind = msg["kind"]
                if kind == "ready":
                    idle.add(g)
                elif kind == "checkpoint":
                    self.models[msg["trial_id"]] = msg["state"]
                    if time.monotonic() - self._last_save >= self.spec.checkpoint.every_seconds:
                        self.save()
                elif kind == "result":
                    busy.pop(g, None)
                    idle.add(g)
                    self._finish(msg, g)
                elif kind == "interrupted":  # only after a flush request; the trial stays in flight
                    busy.pop(g, None)
                    idle.add(g)
            if limit is not None:
                grace = max(30.0, 0.5 * limit)
                for g, tid in list(busy.items()):
                    if time.monotonic() - started[g] > limit + grace:
                        busy.pop(g)
                        retired.add(g)
                        self._finish({"trial_id": tid, "outcome": Outcome.failure(
                            tid, f"time limit ({limit:g}s) exceeded and group {g} does not answer; "
                                 "the group is retired").to_dict(), "state": None}, g)
        self.save()
        self.t.stop(sorted(idle))
        if retired:
            self.echo(f"nasrun: {len(retired)} hung group(s); ending the job with MPI_Abort")
            self.t.abort(1)
        best = self.best()
        n_failed = sum(r.status == FAILED for r in self.records.values())
        bv = best.outcome.value(self.metric) if best else None
        self._print(f"finished ({reason}): {self.finished_count()} trials, {n_failed} failed, best "
                  f"{self.metric} {bv if bv is None else f'{bv:.4f}'}"
                  f"{f' (trial {best.trial_id})' if best else ''}, {self.elapsed():.1f}s")
        return {"reason": reason, "best": best, "trials": self.finished_count(), "failed": n_failed}

    def _dispatch(self, group: int, s: Suggestion) -> None:
        state = self.models.get(s.trial_id)
        if state is None and s.resume_from is not None:
            state = self.models.get(s.resume_from)
        rec = self.records.get(s.trial_id)
        if rec is None:
            rec = TrialRecord(s)
            self._add_record(rec)
        rec.status, rec.group, rec.start = RUNNING, group, time.time()
        keep = self.strategy.multi_fidelity or self.spec.checkpoint.keep_best > 0
        self.t.send_task(group, {"kind": "run", "suggestion": s.to_dict(), "state": state,
                                 "keep_state": bool(keep)})

    def _finish(self, msg: Dict[str, Any], group: int) -> None:
        outcome = Outcome.from_dict(msg["outcome"])
        tid = outcome.trial_id
        rec = self.records[tid]
        rec.status, rec.outcome, rec.end = (DONE if outcome.ok else FAILED), outcome, time.time()
        rec.job_id = self.jobs[-1] if self.jobs else None
        self._note_finished(rec)
        self.strategy.tell(outcome)
        if msg.get("state") is not None:
            self.models[tid] = msg["state"]
        elif not (outcome.ok and self.strategy.multi_fidelity):
            self.models.pop(tid, None)
        self._evict()
        dur = rec.end - (rec.start or rec.end)
        self._mean_trial = dur if self._mean_trial is None else 0.9 * self._mean_trial + 0.1 * dur
        mt = self.spec.budget.max_trials
        count = f"[{self.finished_count()}/{mt}] " if mt else f"[{self.finished_count()}] "
        best = self.best()
        bv = best.outcome.value(self.metric) if best else None
        bs = "-" if bv is None else f"{bv:.4f}"
        if outcome.ok:
            v = outcome.value(self.metric)
            self.counters["consecutive_failures"] = 0
            self._print(f"{count}trial {tid:4d} | group {group} | {self.metric} "
                        f"{'nan' if v is None else f'{v:.4f}'} | best {bs} | {dur:.1f}s")
        else:
            self.counters["consecutive_failures"] += 1
            err = (outcome.error or "").rstrip()
            self._print(f"{count}trial {tid:4d} | group {group} | FAILED | best {bs} | {dur:.1f}s\n"
                        + "\n".join("    " + line for line in err.splitlines()))
        if self.progress_enabled:
            self._prog.update(self._task, completed=self.finished_count())
        self._dirty = True  # saved by the loop once the idle groups have their next trial
        cap = self.spec.resources.max_consecutive_failures
        if self.counters["consecutive_failures"] >= cap:
            self.save()
            self._stop_everything()
            raise RunFailed(f"{cap} consecutive trials failed (resources.max_consecutive_failures); "
                            f"the last error (trial {tid}):\n{outcome.error}")

    def _stop_everything(self) -> None:
        # groups still busy finish their current step of the protocol: flush them, then stop all
        self._checkpoint_groups(self._busy_now())
        self.t.stop(range(self.t.groups))

    def _busy_now(self) -> Dict[int, int]:
        return {r.group: tid for tid, r in self.records.items() if r.status == RUNNING and r.group is not None}

    def _checkpoint_groups(self, busy: Dict[int, int]) -> Set[int]:
        """Ask busy groups for their state; the set of groups that did not answer in time."""
        busy = dict(busy)
        for g in busy:
            self.t.send_flush(g)
        first = self.signals
        end = time.monotonic() + self.flush_timeout
        while busy and time.monotonic() < end and self.signals <= max(first, 1):
            for msg in self.t.poll(0.1):
                g = msg.get("group")
                if msg["kind"] == "checkpoint":
                    self.models[msg["trial_id"]] = msg["state"]
                elif msg["kind"] == "interrupted":
                    busy.pop(g, None)
                elif msg["kind"] == "result":
                    busy.pop(g, None)
                    self._finish_quietly(msg, g)
        return set(busy)

    def _finish_quietly(self, msg, g) -> None:
        outcome = Outcome.from_dict(msg["outcome"])
        rec = self.records[outcome.trial_id]
        rec.status, rec.outcome, rec.end = (DONE if outcome.ok else FAILED), outcome, time.time()
        self._note_finished(rec)
        self.strategy.tell(outcome)
        if msg.get("state") is not None:
            self.models[outcome.trial_id] = msg["state"]

    def _checkpoint_and_exit(self, busy: Dict[int, int], retired: Set[int]) -> None:
        self._print(f"nasrun: signal received: saving the state of {len(busy)} trial(s) in flight")
        silent = self._checkpoint_groups(busy)
        self.save()
        if silent or retired:
            self.echo("nasrun: checkpoint saved; some groups do not answer, aborting the job")
            self.t.abort(75)
        self.t.stop(range(self.t.groups))
        raise Resumable(f"checkpointed after a signal; continue with: nasrun resume "
                        f"{self.spec.experiment.directory}")


def _numpy_rng() -> list:
    # the 624-word key stays an array: the store writes it as a dataset, not as JSON numbers
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return [name, keys.copy(), int(pos), int(has_gauss), float(cached)]
