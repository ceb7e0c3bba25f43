"""How rank 0's driver reaches the worker groups: over MPI, or in-process.

The driver only sends tasks (``run`` with a suggestion dict, the state to continue from and
whether to keep the final state), ``flush`` requests and ``stop``, and polls for the groups'
messages (``ready``, ``checkpoint``, ``interrupted``, ``result``; each names its ``group``).
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional

from ..train.trainer import Control
from .worker import TAG_CTRL, TAG_MSG, TAG_TASK, TrialRunner


class Transport:
    groups: int = 0

    def send_task(self, group: int, task: Dict[str, Any]) -> None:
        raise NotImplementedError

    def send_flush(self, group: int) -> None:
        raise NotImplementedError

    def poll(self, timeout: float, spin: float = 0.0) -> List[Dict[str, Any]]:
        """Messages from the groups, waiting up to ``timeout`` seconds for the first one; the
        first ``spin`` seconds may busy-wait (a result is expected that soon)."""
        raise NotImplementedError

    def stop(self, groups) -> None:
        raise NotImplementedError

    def abort(self, code: int) -> None:
        """End the job although some group does not answer (a hung group)."""
        raise SystemExit(code)


class MpiTransport(Transport):
    def __init__(self, world: Any, role):
        self.world, self.role = world, role
        self.groups = role.groups

    def send_task(self, group, task):
        self.world.send(task, dest=self.role.leader_of(group), tag=TAG_TASK)

    def send_flush(self, group):
        self.world.send({"kind": "flush"}, dest=self.role.leader_of(group), tag=TAG_CTRL)

    def poll(self, timeout, spin=0.0):
        from mpi4py import MPI
        end = time.monotonic() + timeout
        delay = 0.0005
        out = []
        st = MPI.Status()
        # probe back to back while a result is due (the driver's estimate), then sleep a little
        # longer each time: Open MPI's blocking receive would keep a core busy all run long
        spin_end = time.monotonic() + min(max(spin, 2e-4), timeout)
        while True:
            while self.world.Iprobe(source=MPI.ANY_SOURCE, tag=TAG_MSG, status=st):
                out.append(self.world.recv(source=st.Get_source(), tag=TAG_MSG))
            if out or time.monotonic() >= end:
                return out
            if time.monotonic() < spin_end:
                continue
            time.sleep(delay)
            delay = min(delay * 1.5, 0.02)

    def stop(self, groups):
        for g in groups:
            self.world.send({"kind": "stop"}, dest=self.role.leader_of(g), tag=TAG_TASK)

    def abort(self, code):
        self.world.Abort(code)


class InProcessTransport(Transport):
    """One group that runs in rank 0's own process (``nasrun run`` without mpirun, and tests).

    A task runs to completion inside :meth:`poll`; ``should_flush`` is asked between training
    steps (the driver points it at its signal flag).
    """

    groups = 1

    def __init__(self, runner: TrialRunner):
        self.runner = runner
        self.task: Optional[Dict[str, Any]] = None
        self.inbox: List[Dict[str, Any]] = [{"kind": "ready", "group": 0}]
        self.should_flush: Callable[[], bool] = lambda: False

    def send_task(self, group, task):
        self.task = task

    def send_flush(self, group):
        pass  # should_flush already answers True

    def poll(self, timeout, spin=0.0):
        if self.task is not None:
            task, self.task = self.task, None
            tid = task["suggestion"]["trial_id"]
            control = Control(flush_requested=lambda: self.should_flush(),
                              send_checkpoint=lambda st: self.inbox.append(
                                  {"kind": "checkpoint", "group": 0, "trial_id": tid, "state": st}))
            msg = self.runner.run(task, control)
            if msg is not None:
                msg["group"] = 0
                self.inbox.append(msg)
        out, self.inbox = self.inbox, []
        return out

    def stop(self, groups):
        pass
