"""Experiments made on purpose, for tests, benchmarks and the crash tests' writer.

:func:`write_experiment` turns a list of trial records into the events a run would have
logged and writes them through a store (committing every ``commit_every`` finished trials);
:func:`sample_records` makes records in every status.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, Iterable, List, Optional

import numpy as np

from ..trial import Outcome, Suggestion
from .base import DONE, FAILED, QUEUED, RUNNING, ModelState, TrialRecord
from .events import Asked, Finished, JobStarted, Started, StateSaved

SPEC = """experiment: {name: sample, seed: 0}
space: {builtin: chain}
objective: {type: train, metric: valid_accuracy, mode: max}
budget: {max_trials: 12}
"""


def sample_records(n_trials: int = 8, step: int = 0) -> List[TrialRecord]:
    """Trials in every status (done, failed, running, queued, in turn) with configs, budgets,
    promotions, info, metrics, curves and tracebacks; ``step`` changes the metric values."""
    trials = []
    statuses = [DONE, FAILED, RUNNING, QUEUED]
    for i in range(n_trials):
        st = statuses[i % 4]
        sug = Suggestion(i, {"op": ["conv3x3", "skip"][i % 2], "lr": 10 ** -(1 + i % 3), "layers": i},
                         budget=[None, 3.0, 9.0][i % 3], resume_from=(i - 1 if i % 3 == 2 else None),
                         info={"rung": i % 3, "bracket": [0, 1]})
        outcome = None
        if st == DONE:
            outcome = Outcome(i, DONE, {"valid_accuracy": 0.5 + i / 100 + step / 1000,
                                        "params": 1000.0 + i},
                              tuple({"epoch": float(e), "valid_accuracy": 0.1 * e} for e in range(3)))
        elif st == FAILED:
            outcome = Outcome.failure(i, f"RuntimeError: CUDA out of memory (trial {i})\nTraceback...")
        trials.append(TrialRecord(sug, st, outcome, group=(i % 2 if st != QUEUED else None),
                                  start=(1.7e9 + i if st != QUEUED else None),
                                  end=(1.7e9 + 10 + i if st in (DONE, FAILED) else None),
                                  job_id=("123" if st in (DONE, FAILED) else None)))
    return trials


def sample_state(trial_id: int, epoch: int = 1, params: int = 1000, seed: int = 0) -> ModelState:
    """A model state with tensors of several dtypes (an empty one too) and nested meta."""
    g = np.random.default_rng(1000 * seed + trial_id)
    return ModelState(trial_id, epoch, tensors={
        "conv1.weight": g.standard_normal(params).astype(np.float32),
        "fc/bias": g.standard_normal(10),
        "bn.num_batches_tracked": np.array(7 + epoch, dtype=np.int64),
        "empty": np.zeros((0,), np.float32)},
        meta={"curve": [{"loss": 1.0}], "optimizer": {"lr": 0.01, "step": 5},
              "rng": g.integers(0, 2 ** 32, 4, dtype=np.uint64)})


def events_of(records: Iterable[TrialRecord], first_seq: int = 0) -> List[Any]:
    """The events that leave a store holding ``records`` (in trial id order)."""
    out: List[Any] = []
    seq = first_seq
    for r in sorted(records, key=lambda r: r.trial_id):
        out.append(Asked(seq, r.suggestion))
        seq += 1
        if r.start is not None or r.status in (RUNNING, DONE, FAILED):
            out.append(Started(r.trial_id, -1 if r.group is None else r.group,
                               r.start if r.start is not None else 0.0))
        if r.status in (DONE, FAILED):
            o = r.outcome or Outcome.failure(r.trial_id, "failed")
            out.append(Finished(seq, o, r.end if r.end is not None else 0.0, r.job_id))
            seq += 1
    return out


def write_experiment(store: Any, records: Iterable[TrialRecord], spec_text: str = SPEC,
                     runtime: Optional[Dict[str, Any]] = None, jobs: Iterable[str] = (),
                     commit_every: Optional[int] = None,
                     states: Optional[Dict[int, ModelState]] = None, version: str = "test") -> Any:
    """Write ``records`` into ``store`` (an HDF5Store, a MemoryStore or a directory) as a run
    would have: one event per change, commits every ``commit_every`` finished trials and at
    the end (strategy state: an empty snapshot). ``states``: model states to write and keep
    (per trial id). Returns the store (its writer lock released)."""
    from ..view import ExperimentView
    if isinstance(store, str):
        from .hdf5 import open_store
        store = open_store(store)
    view = ExperimentView.from_text(spec_text)  # the stored metric column is the spec's metric
    store.begin(spec_text, version, None, view.metric, view.mode)
    store.commit(dict(runtime or {}), (-1, {}))
    for j in jobs:
        store.log(JobStarted(str(j)))
    n = 0
    for e in events_of(records):
        store.log(e)
        if isinstance(e, Finished):
            n += 1
            if commit_every and n % commit_every == 0:
                store.commit(dict(runtime or {}))
    for ms in (states or {}).values():
        store.log(StateSaved(store.states.write(ms)))
    store.commit(dict(runtime or {}))
    store.close()
    return store


def difference(a: Any, b: Any, where: str = "") -> Optional[str]:
    """Where ``a`` and ``b`` differ in structure, type, dtype or value (None when identical).

    Compares dataclasses field by field, dicts with key order, numpy arrays by dtype, shape and
    values (NaN equal to NaN)."""
    if type(a) is not type(b):
        return f"{where or '.'}: {type(a).__name__} != {type(b).__name__}"
    if dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            d = difference(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
            if d:
                return d
        return None
    if isinstance(a, np.ndarray):
        if a.dtype != b.dtype or a.shape != b.shape:
            return f"{where}: {a.dtype}{a.shape} != {b.dtype}{b.shape}"
        nan = a.dtype.kind in "fc"
        return None if np.array_equal(a, b, equal_nan=nan) else f"{where}: values differ"
    if isinstance(a, np.generic):
        if a.dtype != b.dtype:
            return f"{where}: {a.dtype} != {b.dtype}"
        return difference(np.asarray(a), np.asarray(b), where)
    if isinstance(a, dict):
        if list(a) != list(b):
            return f"{where}: keys {list(a)} != {list(b)}"
        for k in a:
            d = difference(a[k], b[k], f"{where}[{k!r}]")
            if d:
                return d
        return None
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            d = difference(x, y, f"{where}[{i}]")
            if d:
                return d
        return None
    if isinstance(a, float) and math.isnan(a) and math.isnan(b):
        return None
    return None if a == b else f"{where}: {a!r} != {b!r}"
