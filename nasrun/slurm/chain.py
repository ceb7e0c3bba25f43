"""The job chain of an experiment: ``<experiment dir>/slurm-jobs.json``, one JSON object a line.

``nasrun submit`` appends ``submitted``; every batch job appends ``start`` and ``exit`` (with the
exit code) and, when it resubmits itself, ``resubmitted`` with the new job id (or ``limit`` when
``max_resubmits`` stopped the chain, ``skipped`` when a cancelled chain's job did not start).
Lines are appended with a single write, so the bash side needs no locking. ``nasrun cancel``
leaves the marker file ``slurm-cancelled``, which the batch script checks before it resubmits.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from .render import CANCEL_MARKER, CHAIN_FILE


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def append_event(experiment_dir: str, event: str, job_id: str, resubmit: int, **extra: Any) -> None:
    os.makedirs(experiment_dir, exist_ok=True)
    record = {"event": event, "job_id": str(job_id), "resubmit": int(resubmit), "time": now(), **extra}
    path = os.path.join(experiment_dir, CHAIN_FILE)
    with open(path, "a+b") as f:
        f.seek(0, os.SEEK_END)
        start = b""
        if f.tell() > 0:  # a torn last line must not swallow this record
            f.seek(-1, os.SEEK_END)
            start = b"" if f.read(1) == b"\n" else b"\n"
        f.write(start + (json.dumps(record) + "\n").encode())


def read_events(experiment_dir: str) -> List[Dict[str, Any]]:
    """All events in order; a line that is not a JSON object (a torn write) is skipped."""
    path = os.path.join(experiment_dir, CHAIN_FILE)
    if not os.path.exists(path):
        return []
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and "event" in rec and "job_id" in rec:
                out.append(rec)
    return out


@dataclass
class ChainJob:
    """One SLURM job of the chain, as the chain file tells it."""

    job_id: str
    resubmit: int
    submitted: Optional[str] = None
    started: Optional[str] = None
    exit_code: Optional[int] = None
    signalled: bool = False
    note: str = ""


def chain_jobs(events: List[Dict[str, Any]]) -> List[ChainJob]:
    jobs: Dict[str, ChainJob] = {}
    for e in events:
        jid = str(e["job_id"])
        job = jobs.get(jid)
        if job is None:
            job = jobs[jid] = ChainJob(jid, int(e.get("resubmit", 0)))
        kind = e["event"]
        if kind in ("submitted", "resubmitted"):
            job.submitted = e.get("time")
        elif kind == "start":
            job.started = e.get("time")
        elif kind == "exit":
            job.exit_code = e.get("code")
            job.signalled = bool(e.get("signalled"))
        elif kind == "limit":
            job.note = "max_resubmits reached"
        elif kind == "skipped":
            job.note = "not started: chain cancelled"
    return list(jobs.values())


def resubmissions(experiment_dir: str) -> int:
    """How many times the current chain (since the last ``nasrun submit``) resubmitted itself."""
    events = read_events(experiment_dir)
    last = max((i for i, e in enumerate(events) if e["event"] == "submitted"), default=-1)
    return sum(1 for e in events[last + 1:] if e["event"] == "resubmitted")


def cancel_marker(experiment_dir: str) -> str:
    return os.path.join(experiment_dir, CANCEL_MARKER)


def mark_cancelled(experiment_dir: str) -> None:
    os.makedirs(experiment_dir, exist_ok=True)
    with open(cancel_marker(experiment_dir), "w", encoding="utf-8") as f:
        f.write(f"CANCELLED {now()}\n")


def clear_cancelled(experiment_dir: str) -> None:
    try:
        os.remove(cancel_marker(experiment_dir))
    except FileNotFoundError:
        pass


def is_cancelled(experiment_dir: str) -> bool:
    return os.path.exists(cancel_marker(experiment_dir))
