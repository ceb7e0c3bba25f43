"""Budget progress, ETA and worker-group utilization of a run, as of its last checkpoint.

Pure functions of trial records and numbers (no clock, no files), shared by ``nasrun status``
and ``nasrun report``.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ..store.base import DONE, FAILED, RUNNING, TrialRecord


def budget_progress(budget: Mapping[str, Any], finished: int, elapsed: Optional[float]) -> Dict[str, Any]:
    """How far a run is through its budget, and when it should end at the current pace.

    ``finished``: done + failed trials (what ``max_trials`` counts); ``elapsed``: the run's own
    elapsed seconds (what ``max_seconds`` counts). The pace is ``finished / elapsed``; the ETA
    (seconds from the checkpoint) is the sooner of the two ends that the budget sets, ``None``
    when neither can be estimated. ``fraction`` is the larger of the two fractions (0..1).
    """
    max_trials = budget.get("max_trials")
    max_seconds = budget.get("max_seconds")
    rate = finished / elapsed if elapsed and elapsed > 0 and finished > 0 else None
    fractions: List[float] = []
    etas: List[float] = []
    if isinstance(max_trials, (int, float)) and max_trials > 0:
        fractions.append(min(1.0, finished / max_trials))
        if finished >= max_trials:
            etas.append(0.0)
        elif rate:
            etas.append((max_trials - finished) / rate)
    if isinstance(max_seconds, (int, float)) and max_seconds > 0 and elapsed is not None:
        fractions.append(min(1.0, elapsed / max_seconds))
        etas.append(max(0.0, max_seconds - elapsed))
    return {"fraction": max(fractions) if fractions else None,
            "eta_seconds": min(etas) if etas else None,
            "trials_per_hour": rate * 3600 if rate else None,
            "max_trials": max_trials, "max_seconds": max_seconds}


def busy_interval(t: TrialRecord, as_of: float) -> Optional[tuple]:
    """(start, end) of a trial's time on its group; a running trial is busy until ``as_of``."""
    if t.group is None or t.start is None:
        return None
    end = t.end if t.end is not None else (as_of if t.status == RUNNING else None)
    if end is None or end < t.start:
        return None
    return t.start, end


def group_utilization(trials: Sequence[TrialRecord], as_of: Optional[float] = None) -> Dict[str, Any]:
    """Busy time of each worker group over the run's wall-clock window.

    The window runs from the first trial start to ``as_of`` (the checkpoint's time) when trials
    are running, else to the last trial end; gaps between SLURM jobs count as idle. A group's
    ``fraction`` is its summed trial time over the window (trials on one group never overlap).
    Returns ``{"window": seconds or None, "groups": {group: {busy, fraction, trials, failed}}}``.
    """
    ends = [t.end for t in trials if t.end is not None]
    if as_of is None or not any(t.status == RUNNING for t in trials):
        as_of = max(ends) if ends else as_of
    spans = [(t, busy_interval(t, as_of)) for t in trials] if as_of is not None else []
    spans = [(t, s) for t, s in spans if s is not None]
    if not spans:
        return {"window": None, "groups": {}}
    t0 = min(s[0] for _, s in spans)
    window = max(as_of - t0, 0.0)
    groups: Dict[int, Dict[str, Any]] = {}
    for t, (a, b) in spans:
        g = groups.setdefault(int(t.group), {"busy": 0.0, "trials": 0, "failed": 0})
        g["busy"] += b - a
        g["trials"] += 1
        g["failed"] += t.status == FAILED
    for g in groups.values():
        g["fraction"] = g["busy"] / window if window > 0 else math.nan
    return {"window": window, "groups": dict(sorted(groups.items()))}


def finished_count(trials: Sequence[TrialRecord]) -> int:
    return sum(t.status in (DONE, FAILED) for t in trials)
