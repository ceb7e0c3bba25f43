"""Budget progress, ETA and worker-group utilization of a run, as of its last checkpoint.

Pure functions of trial records and numbers (no clock, no files), shared by ``nasrun status``
and ``nasrun report``.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

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
    return utilization_arrays(
        np.array([-1 if t.group is None else t.group for t in trials], dtype=np.int64),
        np.array([np.nan if t.start is None else t.start for t in trials], dtype=float),
        np.array([np.nan if t.end is None else t.end for t in trials], dtype=float),
        np.array([t.status.encode() for t in trials], dtype="S8"), as_of)


def utilization_of_state(state: Any, as_of: Optional[float] = None) -> Dict[str, Any]:
    """:func:`group_utilization` of an ExperimentState, from its columns (no records built)."""
    live = list(state.fresh) + list(state.live.values())
    parts = [(np.asarray(b.cols["group"]), np.asarray(b.cols["start"], dtype=float),
              np.asarray(b.cols["end"], dtype=float), np.asarray(b.cols["status"]))
             for b in (state.table.blocks if state.table is not None else [])]
    parts.append((np.array([-1 if t.group is None else t.group for t in live], dtype=np.int64),
                  np.array([np.nan if t.start is None else t.start for t in live], dtype=float),
                  np.array([np.nan if t.end is None else t.end for t in live], dtype=float),
                  np.array([t.status.encode() for t in live], dtype="S8")))
    group, start, end, status = (np.concatenate([p[i] for p in parts]) for i in range(4))
    return utilization_arrays(group, start, end, status, as_of)


def utilization_arrays(group: np.ndarray, start: np.ndarray, end: np.ndarray, status: np.ndarray,
                       as_of: Optional[float] = None) -> Dict[str, Any]:
    running = status == RUNNING.encode()
    finite_end = end[~np.isnan(end)]
    if as_of is None or not running.any():
        as_of = float(finite_end.max()) if len(finite_end) else as_of
    if as_of is None:
        return {"window": None, "groups": {}}
    stop = np.where(np.isnan(end), np.where(running, as_of, np.nan), end)
    ok = (group >= 0) & ~np.isnan(start) & ~np.isnan(stop) & (stop >= start)
    if not ok.any():
        return {"window": None, "groups": {}}
    g, a, b, stt = group[ok], start[ok], stop[ok], status[ok]
    t0 = float(a.min())
    window = max(as_of - t0, 0.0)
    groups: Dict[int, Dict[str, Any]] = {}
    ids, inverse = np.unique(g, return_inverse=True)
    busy = np.bincount(inverse, weights=b - a)
    count = np.bincount(inverse)
    failed = np.bincount(inverse, weights=(stt == FAILED.encode()).astype(float))
    for j, gid in enumerate(ids.tolist()):
        groups[int(gid)] = {"busy": float(busy[j]), "trials": int(count[j]),
                            "failed": int(failed[j]),
                            "fraction": float(busy[j]) / window if window > 0 else math.nan}
    return {"window": window, "groups": groups}


def finished_count(trials: Sequence[TrialRecord]) -> int:
    return sum(t.status in (DONE, FAILED) for t in trials)
