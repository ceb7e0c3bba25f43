"""The driver's clocks: the wall clock, or a virtual clock that simulated groups run on.

A :class:`VirtualClock` advances when the transport jumps to the next simulated event and, when
``charge`` is on, by the driver's own CPU time between polls (measured with ``perf_counter``),
so a simulation reports what rank 0 would really spend per trial (asks, tells, checkpoints,
bookkeeping). Work done on behalf of a simulated group (running its objective in this process)
is excluded with :meth:`VirtualClock.paused`.
"""
from __future__ import annotations

import contextlib
import time
from typing import Iterator


class WallClock:
    virtual = False

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()


class VirtualClock:
    virtual = True

    def __init__(self, base: float = 0.0, charge: bool = True):
        self.base = base  # Unix time of virtual second 0 (0: simulated runs start at the epoch)
        self.charge = charge
        self.t = 0.0
        self._mark = time.perf_counter()
        self._paused = 0
        self.charged = 0.0  # driver CPU seconds added to the clock

    def monotonic(self) -> float:
        if self.charge and not self._paused:
            return self.t + (time.perf_counter() - self._mark)
        return self.t

    def time(self) -> float:
        return self.base + self.monotonic()

    def settle(self) -> float:
        """Fold the driver's CPU time so far into the clock; the current virtual time."""
        now = self.monotonic()
        if self.charge and not self._paused:
            self.charged += now - self.t
        self.t = now
        self._mark = time.perf_counter()
        return now

    def jump(self, to: float) -> None:
        """Idle until virtual time ``to`` (never backwards)."""
        self.settle()
        if to > self.t:
            self.t = to

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Time spent inside does not count as driver time."""
        self.settle()
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1
            self._mark = time.perf_counter()
