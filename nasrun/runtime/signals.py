"""SIGTERM/SIGUSR1 that arrive while a job is still starting.

SLURM may send the time-limit signal early (its timing has about a minute of granularity), even
while Python is still importing torch on every rank; the default action of SIGUSR1 would then
kill the ranks instead of letting rank 0 checkpoint. ``nasrun run``/``resume`` call
:func:`catch_early` first; the driver and the worker loop take the signals noted so far with
:func:`take_early` when they install their own handlers.
"""
from __future__ import annotations

import signal
import threading
from typing import List

SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
_early: List[int] = []


def _note(signum, frame) -> None:
    _early.append(signum)


def catch_early() -> None:
    if threading.current_thread() is threading.main_thread():
        for sig in SIGNALS:
            signal.signal(sig, _note)


def take_early() -> int:
    """How many signals arrived before the runtime's handlers (and forget them)."""
    n = len(_early)
    del _early[:n]
    return n


def ignore_late() -> None:
    """After the run: ignore the signals while the process exits. Python resets its handlers to
    the default action during finalisation, and a SLURM signal arriving then would kill a rank
    of a finished run (srun: 'User defined signal 1', exit 138 instead of 0)."""
    if threading.current_thread() is threading.main_thread():
        for sig in SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
