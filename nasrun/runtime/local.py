"""N worker groups inside rank 0's process, on a virtual clock (event-driven).

A trial handed to a group runs at once, in this process, through the same
:class:`~nasrun.runtime.worker.TrialRunner` as on an MPI worker; its result is delivered when
the virtual clock reaches its start plus its duration. The duration is either the measured
wall time of the run (``duration=None``: the Python API, ``nasrun run`` without mpirun: several
groups then behave as if they trained side by side) or a simulated time given by ``duration``
(``(outcome, suggestion, wall seconds) -> seconds``: the NAS-Bench-201 table's training times,
a function objective's ``train_seconds``...), so thousands of simulated groups run at the
speed of the driver itself. Time spent running a trial is never charged to the driver.

Deterministic when the durations are (simulated, with ``VirtualClock(charge=False)``): the same
run gives the same events in the same order, which is how the multi-group tests work.

A simulated trial ends at its time limit (a failure) when its duration exceeds
``resources.trial_time_limit``. A stopper's decision (a Progress report) is taken when the trial
reports, with what the driver knows at the trial's start time. A Flush (a signal) gives back
every trial whose result is not yet due: its state is the last checkpoint delivered before.
"""
from __future__ import annotations

import heapq
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..trial import Outcome, Suggestion
from . import messages as m
from .clock import VirtualClock
from .transport import Transport
from .worker import Hooks, TrialRunner

Duration = Callable[[Outcome, Suggestion, float], float]


class LocalTransport(Transport):
    decisions_by_message = False

    def __init__(self, runner: TrialRunner, groups: int = 1, clock: Optional[VirtualClock] = None,
                 duration: Optional[Duration] = None, time_limit: Optional[float] = None):
        if groups < 1:
            raise ValueError("at least one group")
        self.runner, self.groups = runner, int(groups)
        self.clock = clock or VirtualClock(base=time.time(), charge=True)
        self.duration, self.time_limit = duration, time_limit
        self.events: List[Tuple[float, int, Any]] = []
        self.seq = 0
        self.cancelled: set = set()
        self.running: Dict[int, Tuple[int, int, float]] = {}  # group -> (trial id, event seq, end)
        self.busy_time = 0.0  # simulated seconds the groups spent on trials (utilization)
        self.last_start = 0.0  # when the last trial was handed out (the end of the steady state)
        self._spans: Dict[int, Tuple[float, float]] = {}  # trial id -> (start, end) on the clock
        for g in range(self.groups):
            self._push(self.clock.t, m.Ready(g))

    def _push(self, t: float, msg: Any) -> int:
        self.seq += 1
        heapq.heappush(self.events, (t, self.seq, msg))
        return self.seq

    def send(self, group: int, msg: Any) -> None:
        if isinstance(msg, m.RunTrial):
            self._run(group, msg)
        elif isinstance(msg, m.Flush):
            self._flush(group)
        # Stop, Heartbeat, Decision: nothing to do for an in-process group

    def _run(self, group: int, task: m.RunTrial) -> None:
        start = self.clock.settle()
        tid = task.suggestion.trial_id
        saved: List[Tuple[float, Any]] = []
        hooks = Hooks()
        t0 = time.perf_counter()
        hooks.flush_requested = self.should_flush
        hooks.checkpointed = lambda ref: saved.append((time.perf_counter() - t0, ref))

        def progress(trial_id: int, epoch: int, curve: Tuple[Dict[str, float], ...]) -> bool:
            if self.on_progress is None:
                return False
            with _resumed(self.clock):
                return bool(self.on_progress(m.Progress(group, trial_id, epoch, curve)))

        hooks.progress = progress
        with self.clock.paused():
            t0 = time.perf_counter()
            msg = self.runner.run(task, hooks)
            wall = time.perf_counter() - t0
        if isinstance(msg, m.Interrupted):
            end = start + wall
            for dt, ref in saved:
                self._push(start + dt, m.Checkpointed(group, ref))
            self._push(end, m.Interrupted(group, tid))
            self.running[group] = (tid, -1, end)
            return
        assert isinstance(msg, m.Result)
        outcome = msg.outcome
        dur = wall if self.duration is None else float(self.duration(outcome, task.suggestion, wall))
        if self.duration is not None and self.time_limit is not None and dur > self.time_limit:
            outcome = Outcome.failure(tid, f"time limit ({self.time_limit:g}s) exceeded "
                                           f"(the trial needs {dur:g} simulated s)")
            dur = self.time_limit
        scale = dur / wall if wall > 0 else 0.0
        for dt, ref in saved:
            self._push(start + dt * scale, m.Checkpointed(group, ref))
        end = start + max(0.0, dur)
        seq = self._push(end, m.Result(group, outcome, msg.state if outcome.ok else None, msg.note))
        self.running[group] = (tid, seq, end)
        self.busy_time += end - start
        self.last_start = max(self.last_start, start)
        self._spans[seq] = (start, end)

    def _flush(self, group: int) -> None:
        run = self.running.get(group)
        now = self.clock.settle()
        if run is None or run[1] < 0 or run[2] <= now:
            return  # nothing in flight, or its result is already due
        tid, seq, end = run
        self.cancelled.add(seq)
        self.busy_time -= end - now
        if seq in self._spans:
            self._spans[seq] = (self._spans[seq][0], now)
        # checkpoints that would only have happened later are dropped with the result
        self.events = [e for e in self.events
                       if not (e[0] > now and isinstance(e[2], m.Checkpointed) and e[2].group == group)]
        heapq.heapify(self.events)
        self._push(now, m.Interrupted(group, tid))
        self.running[group] = (tid, -1, now)

    def busy_until(self, t: float) -> float:
        """Simulated seconds the groups spent on trials between the start and time ``t``."""
        return sum(min(e, t) - s for s, e in self._spans.values() if s < t)

    def poll(self, timeout: float, spin: float = 0.0) -> List[Any]:
        now = self.clock.settle()
        while self.events and self.events[0][1] in self.cancelled:
            heapq.heappop(self.events)
        if not self.events:
            return []
        if self.events[0][0] > now:
            self.clock.jump(self.events[0][0])
            now = self.clock.t
        out = []
        while self.events and self.events[0][0] <= now:
            _, seq, msg = heapq.heappop(self.events)
            if seq in self.cancelled:
                self.cancelled.discard(seq)
                continue
            out.append(msg)
        return out

    def abort(self, code: int) -> None:
        raise SystemExit(code)


class _resumed:
    """Inside a paused clock: count the driver's own work again (a stopper decision)."""

    def __init__(self, clock: VirtualClock):
        self.clock = clock

    def __enter__(self):
        self.clock._paused -= 1
        self.clock._mark = time.perf_counter()

    def __exit__(self, *exc):
        self.clock.settle()
        self.clock._paused += 1
        return False
