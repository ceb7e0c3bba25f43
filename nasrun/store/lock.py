"""One writer per experiment: a lock file naming its owner, which a dead owner cannot keep.

``experiment.lock`` is created with O_EXCL and holds JSON: host, pid, SLURM job id, start time.
The owner refreshes its modification time (:meth:`WriterLock.refresh`, at every commit). A lock
is stale, and taken over, when its owner is on this host and its pid no longer runs, or when
it has not been refreshed for ``stale_after`` seconds (an owner on another node that died).
Otherwise a second writer is refused with a message naming the owner.
"""
from __future__ import annotations

import json
import os
import socket
import time
from typing import Any, Dict, Optional

from ..errors import UserInputError


class LockedError(UserInputError):
    """Another process writes this experiment."""


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs on this host. A zombie does not: a killed owner stays one until its
    new parent reaps it (after mpirun is killed, whenever PID 1 gets to it), and a run that
    resumes at once must not be refused for it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (or it vanished meanwhile): signal 0 said it runs


class WriterLock:
    def __init__(self, path: str, stale_after: float = 900.0):
        self.path = path
        self.stale_after = stale_after
        self.held = False

    def owner(self) -> Optional[Dict[str, Any]]:
        try:
            with open(self.path, encoding="utf-8") as f:
                d = json.load(f)
            return d if isinstance(d, dict) else {}
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}

    def _stale(self, owner: Dict[str, Any]) -> Optional[str]:
        try:
            age = time.time() - os.stat(self.path).st_mtime
        except FileNotFoundError:
            return "gone"
        host, pid = owner.get("host"), owner.get("pid")
        if host == socket.gethostname() and isinstance(pid, int):
            if pid != os.getpid() and not _alive(pid):
                return f"its owner (pid {pid} on {host}) is not running"
        if age > self.stale_after:
            return f"not refreshed for {age:.0f} s"
        return None

    def acquire(self) -> None:
        """Take the lock (again: a no-op while this object holds it); LockedError when a live
        writer holds it."""
        if self.held:
            return
        me = {"host": socket.gethostname(), "pid": os.getpid(),
              "job_id": os.environ.get("SLURM_JOB_ID"), "started": time.time()}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                             | getattr(os, "O_NOFOLLOW", 0), 0o644)
            except FileExistsError:
                owner = self.owner()
                if owner is None:
                    continue
                why = self._stale(owner)
                if why is None:
                    job = f", SLURM job {owner['job_id']}" if owner.get("job_id") else ""
                    raise LockedError(
                        f"{os.path.dirname(self.path)}: the experiment is being written by another "
                        f"run (pid {owner.get('pid')} on {owner.get('host')}{job}, lock "
                        f"{self.path}); one run per experiment. If that run is gone, remove "
                        f"the lock file (it is taken over by itself after {self.stale_after:.0f} s "
                        "without a refresh)") from None
                try:
                    os.remove(self.path)  # stale: take it over
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(me, f)
            self.held = True
            return
        raise LockedError(f"cannot take the experiment lock {self.path}")

    def refresh(self) -> None:
        if self.held:
            try:
                os.utime(self.path)
            except FileNotFoundError:
                pass

    def release(self) -> None:
        if self.held:
            owner = self.owner() or {}
            if owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
                try:
                    os.remove(self.path)
                except FileNotFoundError:
                    pass
            self.held = False
