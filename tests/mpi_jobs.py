"""Helpers of the MPI integration tests: `nasrun` under mpirun as a killable background job."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import List, Optional

from conftest import REPO, mpi_env

NB201 = os.path.join(os.path.dirname(REPO), "shared", "benchmarks", "nb201")
TESTS = os.path.join(REPO, "tests")


def session_pids(sid: int) -> List[int]:
    """Every live process of session ``sid``. Open MPI puts each rank in a process group of its
    own, so killing mpirun's process group would leave the ranks running; the session holds all."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.getsid(int(name)) == sid:
                    with open(f"/proc/{name}/stat") as f:
                        if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                            out.append(int(name))
            except (OSError, IndexError):
                pass
    return out


class Job:
    """``mpirun -np N python -m nasrun ARGS`` in a new session; output collected by a thread."""

    def __init__(self, np_: int, args: List[str], cwd: str, env: Optional[dict] = None):
        cmd = (["mpirun", "--oversubscribe", "-np", str(np_)] if np_ > 1 else []) + \
            [sys.executable, "-m", "nasrun", *args]
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env or mpi_env(), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.t0 = time.monotonic()  # when the job was started
        self.lines: List[str] = []
        self.stamps: List[float] = []  # time.monotonic() when each line arrived
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.stamps.append(time.monotonic())
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def line_time(self, prefix: str) -> Optional[float]:
        """When the first line starting with ``prefix`` arrived (None: no such line)."""
        for t, line in zip(self.stamps, self.lines):
            if line.startswith(prefix):
                return t
        return None

    def finished_lines(self) -> int:
        return sum(1 for x in self.lines if x.startswith("[") and "| group" in x)

    def wait_until(self, predicate, timeout: float, what: str) -> bool:
        """True once ``predicate()`` holds, False if the job ended first; fails on timeout."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            if self.proc.poll() is not None:
                self._reader.join(5)
                return bool(predicate())
            time.sleep(0.02)
        self.kill()
        raise AssertionError(f"timed out after {timeout} s waiting for {what}:\n{self.output}")

    def kill(self) -> None:
        """SIGKILL mpirun and every rank at once (the whole session)."""
        for _ in range(50):
            pids = session_pids(self.proc.pid)
            if not pids:
                break
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        self.proc.wait(timeout=30)
        self._reader.join(5)
        assert not session_pids(self.proc.pid), "a rank survived SIGKILL"

    def wait(self, timeout: float) -> int:
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"timed out after {timeout} s:\n{self.output}") from None
        self._reader.join(5)
        if session_pids(self.proc.pid):  # ranks left behind by a failed job
            self.kill()
        return rc
