"""A realistic Snapshot for tests, benchmarks and the writer used in crash tests."""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, Optional

import numpy as np

from ..trial import Outcome, Suggestion
from .base import DONE, FAILED, QUEUED, RUNNING, ModelState, Snapshot, TrialRecord

SPEC = """experiment: {name: sample, seed: 0}
space: {builtin: chain}
objective: {type: train, metric: valid_accuracy, mode: max}
budget: {max_trials: 12}
"""


def sample_snapshot(step: int = 0, n_trials: int = 8, model_params: int = 1000,
                    spec_text: Optional[str] = None) -> Snapshot:
    """A snapshot with trials in every status, nested strategy/runtime state and model states.

    ``step`` makes it distinct (tests check which save a load returned): it is stored in
    ``runtime_state['step']`` and changes the model tensors' values.
    """
    trials = []
    statuses = [DONE, FAILED, RUNNING, QUEUED]
    for i in range(n_trials):
        st = statuses[i % 4]
        sug = Suggestion(i, {"op": ["conv3x3", "skip"][i % 2], "lr": 10 ** -(1 + i % 3), "layers": i},
                         budget=[None, 3, 9.0][i % 3], resume_from=(i - 1 if i % 3 == 2 else None),
                         info={"rung": i % 3, "bracket": [0, 1]})
        outcome = None
        if st == DONE:
            outcome = Outcome(i, DONE, {"valid_accuracy": 0.5 + i / 100, "params": 1000 + i},
                              tuple({"epoch": e, "valid_accuracy": 0.1 * e} for e in range(3)))
        elif st == FAILED:
            outcome = Outcome.failure(i, f"RuntimeError: CUDA out of memory (trial {i})\nTraceback...")
        trials.append(TrialRecord(sug, st, outcome, group=(i % 2 if st != QUEUED else None),
                                  start=(1.7e9 + i if st != QUEUED else None),
                                  end=(1.7e9 + 10 + i if st in (DONE, FAILED) else None),
                                  job_id=("123" if st in (DONE, FAILED) else None)))
    strategy_state = {
        "next_id": n_trials, "rng": {"bit_generator": "PCG64", "state": {"state": str(2 ** 100 + step),
                                                                          "inc": str(3 ** 70)},
                                     "has_uint32": 0, "uinteger": 0},
        "pending": [t.suggestion.to_dict() for t in trials if t.status in (RUNNING, QUEUED)],
        "strategy": {"population": [{"config": {"op": "skip"}, "score": 0.5, "age": np.int64(3)}],
                     "weights": np.arange(12, dtype=np.float64).reshape(3, 4) * step,
                     "history": (1, 2.5, "x"), "by_trial": {0: [1, 2], 7: []},
                     "mask": np.array([True, False]), "empty": np.zeros((0, 2), np.float32)},
    }
    runtime_state = {"step": step, "elapsed": 12.5 * step,
                     "jobs": [{"job_id": "123", "start": 1.7e9, "end": 1.7e9 + 3600,
                               "reason": "time limit"}, {"job_id": "124", "start": 1.7e9 + 3700}],
                     "rng": {"python": [3, list(range(5)), None], "numpy": np.arange(4, dtype=np.uint32)}}
    models: Dict[int, ModelState] = {}
    for t in trials:
        if t.status == RUNNING or (t.status == DONE and t.trial_id % 3 == 0):
            g = np.random.default_rng(1000 * step + t.trial_id)
            models[t.trial_id] = ModelState(t.trial_id, epoch=1 + step, tensors={
                "conv1.weight": g.standard_normal(model_params).astype(np.float32),
                "fc/bias": g.standard_normal(10),
                "bn.num_batches_tracked": np.array(7 + step, dtype=np.int64),
                "empty": np.zeros((0,), np.float32)},
                meta={"curve": [{"loss": 1.0}], "optimizer": {"lr": 0.01, "step": 5},
                      "rng": g.integers(0, 2 ** 32, 4, dtype=np.uint64)})
    return Snapshot(spec_text if spec_text is not None else SPEC, "0.1.0", trials, strategy_state,
                    runtime_state, models)


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
