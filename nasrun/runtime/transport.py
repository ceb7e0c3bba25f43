"""How rank 0's driver reaches the worker groups.

A transport sends the driver's messages to a group and polls for the groups' messages
(:mod:`nasrun.runtime.messages`); it also owns the driver's clock. Two implementations:

* :class:`MpiTransport` - the groups are MPI ranks (wall clock);
* :class:`~nasrun.runtime.local.LocalTransport` - N groups inside this process on a virtual
  clock: the simulator, the Python API, ``nasrun run`` without mpirun, and tests.

The driver is the same for both: one scheduling loop.
"""
from __future__ import annotations

import time
from typing import Any, Callable, List, Optional

from . import messages as m
from .clock import WallClock
from .worker import TAG_CTRL, TAG_DECISION, TAG_MSG, TAG_TASK


class Transport:
    groups: int = 0
    clock: Any = WallClock()
    #: whether idle groups need heartbeats (worker processes that give up on a silent rank 0)
    heartbeats = False
    #: whether the driver answers Progress with a Decision message (else: on_progress is called)
    decisions_by_message = True
    #: set by the driver: (Progress) -> stop? (transports that run trials synchronously)
    on_progress: Optional[Callable[[m.Progress], bool]] = None
    #: set by the driver: whether a flush was requested (a signal came)
    should_flush: Callable[[], bool] = staticmethod(lambda: False)

    def send(self, group: int, msg: Any) -> None:
        raise NotImplementedError

    def poll(self, timeout: float, spin: float = 0.0) -> List[Any]:
        """Messages from the groups, waiting up to ``timeout`` seconds for the first one; the
        first ``spin`` seconds may busy-wait (a result is expected that soon)."""
        raise NotImplementedError

    def abort(self, code: int) -> None:
        """End the job although some group does not answer (a hung group)."""
        raise SystemExit(code)


class MpiTransport(Transport):
    heartbeats = True

    def __init__(self, world: Any, role):
        self.world, self.role = world, role
        self.groups = role.groups
        self.clock = WallClock()

    def send(self, group: int, msg: Any) -> None:
        tag = TAG_CTRL if isinstance(msg, m.Flush) else \
            TAG_DECISION if isinstance(msg, m.Decision) else TAG_TASK
        self.world.send(msg, dest=self.role.leader_of(group), tag=tag)

    def poll(self, timeout: float, spin: float = 0.0) -> List[Any]:
        from mpi4py import MPI
        end = time.monotonic() + timeout
        delay = 0.0005
        out: List[Any] = []
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

    def abort(self, code: int) -> None:
        import sys
        sys.stdout.flush()
        sys.stderr.flush()
        self.world.Abort(code)
