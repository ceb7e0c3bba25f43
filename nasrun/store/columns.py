"""Trial records as columns: the trials table's layout in HDF5, and back.

A block of ``n`` trials is a dict of named columns (the dataset names under ``/trials`` in a
segment file or ``/live`` in the main file)::

    id, resume_from, group, attempts, ask_seq, tell_seq, stopped_at   int64 (-1: none)
    budget, start, end, metric                                         float64 (NaN: none)
    status                                                             |S8: queued running done failed
    config, info, error, job_id      one JSON text each: an array of n values (objects / str / null)
    metric_names   JSON array of k names;  metrics  float64 (n, k), NaN where a trial has none
    curve_names    JSON array of c names;  curve_index int64 (n + 1) offsets into
    curve          float64 (points, c): the per-epoch metrics of trial i are rows
                   curve_index[i]:curve_index[i+1]

``metric`` is the objective's main metric of each trial (NaN when failed or missing). Numbers
are columns so a reader gets counts, the best trial and utilization without parsing any JSON;
the JSON columns are one text per column (one parse per block, not one per trial). Blocks are
concatenated without decoding (:func:`concat`). A metric or curve value that is NaN reads back
as absent (every consumer treats both alike: no information).
"""
from __future__ import annotations

import json
import math
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ..trial import Outcome, Suggestion
from .base import TrialRecord

INT_COLUMNS = ("id", "resume_from", "group", "attempts", "ask_seq", "tell_seq", "stopped_at")
FLOAT_COLUMNS = ("budget", "start", "end", "metric")
JSON_COLUMNS = ("config", "info", "error", "job_id")
STATUS_DTYPE = "S8"
ERROR_LIMIT = 20_000  # characters of an error text kept (tracebacks can be huge)


def _f(x: Any) -> float:
    if x is None:
        return math.nan
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _i(x: Optional[int]) -> int:
    return -1 if x is None else int(x)


def _cut(text: Optional[str]) -> Optional[str]:
    if text is None or len(text) <= ERROR_LIMIT:
        return text
    half = ERROR_LIMIT // 2
    return text[:half] + f"\n... [{len(text) - ERROR_LIMIT} characters cut] ...\n" + text[-half:]


def encode(records: Sequence[TrialRecord], metric: str) -> Dict[str, Any]:
    """The columns of ``records`` (in order)."""
    n = len(records)
    cols: Dict[str, Any] = {}
    outs = [r.outcome for r in records]
    cols["id"] = np.array([r.trial_id for r in records], dtype=np.int64)
    cols["resume_from"] = np.array([_i(r.suggestion.resume_from) for r in records], dtype=np.int64)
    cols["group"] = np.array([_i(r.group) for r in records], dtype=np.int64)
    cols["attempts"] = np.array([r.attempts for r in records], dtype=np.int64)
    cols["ask_seq"] = np.array([r.ask_seq for r in records], dtype=np.int64)
    cols["tell_seq"] = np.array([r.tell_seq for r in records], dtype=np.int64)
    cols["stopped_at"] = np.array([_i(o.stopped_at if o else None) for o in outs], dtype=np.int64)
    cols["budget"] = np.array([_f(r.suggestion.budget) for r in records], dtype=np.float64)
    cols["start"] = np.array([_f(r.start) for r in records], dtype=np.float64)
    cols["end"] = np.array([_f(r.end) for r in records], dtype=np.float64)
    cols["metric"] = np.array([_f(o.value(metric)) if o else math.nan for o in outs], dtype=np.float64)
    cols["status"] = np.array([r.status.encode() for r in records], dtype=STATUS_DTYPE)
    cols["config"] = json.dumps([dict(r.suggestion.config) for r in records], ensure_ascii=False)
    cols["info"] = json.dumps([dict(r.suggestion.info) for r in records], ensure_ascii=False)
    cols["error"] = json.dumps([_cut(o.error) if o else None for o in outs], ensure_ascii=False)
    cols["job_id"] = json.dumps([r.job_id for r in records], ensure_ascii=False)
    names: Dict[str, int] = {}
    for o in outs:
        for k in (o.metrics if o else ()):
            names.setdefault(str(k), len(names))
    m = np.full((n, len(names)), np.nan)
    for i, o in enumerate(outs):
        if o:
            for k, v in o.metrics.items():
                m[i, names[str(k)]] = _f(v)
    cols["metric_names"] = json.dumps(list(names), ensure_ascii=False)
    cols["metrics"] = m
    cnames: Dict[str, int] = {}
    for o in outs:
        for point in (o.curve if o else ()):
            for k in point:
                cnames.setdefault(str(k), len(cnames))
    index = np.zeros(n + 1, dtype=np.int64)
    for i, o in enumerate(outs):
        index[i + 1] = index[i] + (len(o.curve) if o else 0)
    c = np.full((int(index[-1]), len(cnames)), np.nan)
    row = 0
    for o in outs:
        for point in (o.curve if o else ()):
            for k, v in point.items():
                c[row, cnames[str(k)]] = _f(v)
            row += 1
    cols["curve_names"] = json.dumps(list(cnames), ensure_ascii=False)
    cols["curve_index"] = index
    cols["curve"] = c
    return cols


def empty(metric: str = "valid_accuracy") -> Dict[str, Any]:
    return encode([], metric)


def _join_json(texts: Sequence[str]) -> str:
    """Concatenate JSON array texts without parsing them."""
    inner = [t.strip()[1:-1].strip() for t in texts]
    return "[" + ",".join(x for x in inner if x) + "]"


def _widen(values: np.ndarray, names: List[str], union: Dict[str, int]) -> np.ndarray:
    out = np.full((values.shape[0], len(union)), np.nan)
    for j, name in enumerate(names):
        out[:, union[name]] = values[:, j]
    return out


def _matrix(a: Any, k: int) -> np.ndarray:
    m: np.ndarray = np.asarray(a, dtype=np.float64)
    return m if m.ndim == 2 else m.reshape(0, k)


def concat(blocks: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """One block holding the rows of ``blocks`` in order (no JSON is decoded)."""
    if not blocks:
        return empty()
    if len(blocks) == 1:
        return dict(blocks[0])
    out: Dict[str, Any] = {}
    for k in INT_COLUMNS + FLOAT_COLUMNS + ("status",):
        out[k] = np.concatenate([np.asarray(b[k]) for b in blocks])
    for k in JSON_COLUMNS:
        out[k] = _join_json([b[k] for b in blocks])
    for names_key, data_key in (("metric_names", "metrics"), ("curve_names", "curve")):
        lists = [json.loads(b[names_key]) for b in blocks]
        union: Dict[str, int] = {}
        for names in lists:
            for name in names:
                union.setdefault(name, len(union))
        out[names_key] = json.dumps(list(union), ensure_ascii=False)
        out[data_key] = np.concatenate([_widen(_matrix(b[data_key], len(names)), names, union)
                                        for b, names in zip(blocks, lists)])
    offsets, total = [np.zeros(1, dtype=np.int64)], 0
    for b in blocks:
        idx = np.asarray(b["curve_index"], dtype=np.int64)
        offsets.append(idx[1:] - idx[0] + total)
        total += int(idx[-1] - idx[0])
    out["curve_index"] = np.concatenate(offsets)
    return out


def rows(block: Dict[str, Any]) -> int:
    return int(len(block["id"]))


def check(block: Dict[str, Any]) -> None:
    """``ValueError`` when the columns of a block disagree (a forged or damaged file)."""
    n = rows(block)
    for k in INT_COLUMNS + FLOAT_COLUMNS + ("status",):
        a = np.asarray(block[k])
        if a.ndim != 1 or len(a) != n:
            raise ValueError(f"column {k!r} has shape {a.shape}, expected ({n},)")
    for names_key, data_key in (("metric_names", "metrics"), ("curve_names", "curve")):
        names = json.loads(block[names_key])
        if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
            raise ValueError(f"{names_key!r} is not a list of names")
        data = np.asarray(block[data_key])
        if data.ndim != 2 or data.shape[1] != len(names) or data.dtype.kind != "f":
            raise ValueError(f"{data_key!r} has shape {data.shape}, expected (*, {len(names)})")
    if np.asarray(block["metrics"]).shape[0] != n:
        raise ValueError("metrics rows do not match the trials")
    idx = np.asarray(block["curve_index"])
    if idx.shape != (n + 1,) or idx[0] != 0 or np.any(np.diff(idx) < 0) \
            or idx[-1] != np.asarray(block["curve"]).shape[0]:
        raise ValueError("curve_index is not a valid offset array")


class Block:
    """Read access to one block's rows; JSON columns are parsed on first use."""

    def __init__(self, cols: Dict[str, Any]):
        check(cols)
        self.cols = cols
        self.n = rows(cols)
        self._json: Dict[str, List[Any]] = {}
        self.metric_names: List[str] = json.loads(cols["metric_names"])
        self.curve_names: List[str] = json.loads(cols["curve_names"])

    def __len__(self) -> int:
        return self.n

    def json(self, key: str) -> List[Any]:
        if key not in self._json:
            values = json.loads(self.cols[key])
            if not isinstance(values, list) or len(values) != self.n:
                raise ValueError(f"column {key!r} does not hold {self.n} values")
            self._json[key] = values
        return self._json[key]

    def metrics(self, i: int) -> Dict[str, float]:
        row = np.asarray(self.cols["metrics"])[i]
        return {k: float(v) for k, v in zip(self.metric_names, row) if not math.isnan(v)}

    def curve(self, i: int) -> Tuple[Dict[str, float], ...]:
        idx = self.cols["curve_index"]
        pts = np.asarray(self.cols["curve"])[int(idx[i]):int(idx[i + 1])]
        return tuple({k: float(v) for k, v in zip(self.curve_names, p) if not math.isnan(v)}
                     for p in pts)

    def record(self, i: int) -> TrialRecord:
        c = self.cols
        tid = int(c["id"][i])
        budget = float(c["budget"][i])
        rf = int(c["resume_from"][i])
        config, info = self.json("config")[i], self.json("info")[i]
        if not isinstance(config, dict) or not isinstance(info, dict):
            raise ValueError(f"trial {tid}: config/info is not a mapping")
        sug = Suggestion(tid, config, None if math.isnan(budget) else budget,
                         None if rf < 0 else rf, info)
        status = c["status"][i].decode() if isinstance(c["status"][i], bytes) else str(c["status"][i])
        outcome = None
        if status in ("done", "failed"):
            stopped = int(c["stopped_at"][i])
            outcome = Outcome(tid, status, self.metrics(i), self.curve(i), self.json("error")[i],
                              None if stopped < 0 else stopped)
        g = int(c["group"][i])
        job = self.json("job_id")[i]
        return TrialRecord(sug, status, outcome, None if g < 0 else g, _none(c["start"][i]),
                           _none(c["end"][i]), None if job is None else str(job),
                           int(c["attempts"][i]), int(c["ask_seq"][i]), int(c["tell_seq"][i]))

    def records(self, indices: Optional[Iterable[int]] = None) -> List[TrialRecord]:
        return [self.record(int(i)) for i in (range(self.n) if indices is None else indices)]


def _none(x: Any) -> Optional[float]:
    x = float(x)
    return None if math.isnan(x) else x
