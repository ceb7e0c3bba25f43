"""Trials as rows: the leaderboard and the machine-readable ``trials.csv`` / ``trials.json``."""
from __future__ import annotations

import csv
import json
import math
from typing import Any, Dict, List, Optional

from ..store.base import TrialRecord
from .experiment import Experiment

SIZE_KEYS = ("params", "macs", "flops")
BASE_COLUMNS = ["id", "status", "metric", "budget", "stopped_at", "group", "start", "end", "duration",
                "resume_from", "job_id", "config", "info"]


def first_line(error: Optional[str]) -> str:
    return (error or "").strip().split("\n")[0]


def duration(t: TrialRecord) -> Optional[float]:
    return t.end - t.start if t.start is not None and t.end is not None else None


def stopped_at(t: TrialRecord) -> Optional[int]:
    """The epoch after which a stopper ended the trial (a finished trial), None otherwise."""
    return t.outcome.stopped_at if t.outcome is not None else None


def _number(v: Any) -> Optional[float]:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def trial_row(exp: Experiment, t: TrialRecord) -> Dict[str, Any]:
    """One trial as plain data (config/info/metrics as dicts, curve as a list)."""
    o = t.outcome
    return {"id": t.trial_id, "status": t.status, "metric": exp.value(t),
            "budget": t.suggestion.budget, "stopped_at": stopped_at(t), "group": t.group,
            "start": t.start, "end": t.end,
            "duration": duration(t), "resume_from": t.suggestion.resume_from, "job_id": t.job_id,
            "config": dict(t.suggestion.config), "info": dict(t.suggestion.info),
            "metrics": dict(o.metrics) if o else {}, "curve": [dict(c) for c in o.curve] if o else [],
            "error": first_line(o.error if o else None)}


def _csv_cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ""
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=False)
    return str(v)


def write_csv(exp: Experiment, path: str) -> None:
    """All trials, one row each; metrics flattened as ``metrics.<name>`` columns (sorted)."""
    rows = [trial_row(exp, t) for t in exp.trials]
    keys = sorted({k for r in rows for k in r["metrics"]})
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(BASE_COLUMNS + [f"metrics.{k}" for k in keys] + ["error"])
        for r in rows:
            w.writerow([_csv_cell(r[c]) for c in BASE_COLUMNS]
                       + [_csv_cell(r["metrics"].get(k)) for k in keys] + [r["error"]])


def _finite(x: Any) -> Any:
    """JSON has no NaN/Infinity: non-finite floats become null."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


def write_json(exp: Experiment, path: str) -> None:
    """``{experiment, metric, mode, trials: [trial_row...]}``, strict JSON (no NaN)."""
    doc = {"experiment": exp.name, "file": exp.file, "generation": exp.generation,
           "metric": exp.metric, "mode": exp.mode,
           "trials": [trial_row(exp, t) for t in exp.trials]}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(_finite(doc), f, indent=1, allow_nan=False)
        f.write("\n")


def size_of(t: TrialRecord, key: str) -> Optional[float]:
    return _number(t.outcome.metrics.get(key)) if t.outcome is not None else None


def leaderboard(exp: Experiment, top: int) -> List[Dict[str, Any]]:
    """The ``top`` best done trials: rank, id, metric, budget, params, macs/flops, time, config."""
    rows = []
    for rank, t in enumerate(exp.ranked()[:top], 1):
        rows.append({"rank": rank, "id": t.trial_id, exp.metric: exp.value(t),
                     "budget": t.suggestion.budget, "stopped_at": stopped_at(t),
                     "params": size_of(t, "params"),
                     "macs": size_of(t, "macs"), "flops": size_of(t, "flops"),
                     "duration": duration(t), "group": t.group, "config": dict(t.suggestion.config)})
    return rows


def write_leaderboard_csv(exp: Experiment, rows: List[Dict[str, Any]], path: str) -> None:
    cols = list(rows[0]) if rows else ["rank", "id", exp.metric]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in rows:
            w.writerow([_csv_cell(r[c]) for c in cols])


def human(v: Optional[float]) -> str:
    """A count such as parameters or MACs, short: 1.23M, 456k."""
    if v is None:
        return "-"
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suffix}"
    return f"{v:.3g}"
