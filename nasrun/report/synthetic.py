"""A realistic synthetic run (ASHA-like rungs on 4 worker groups) for tests, demos and benchmarks.

Deterministic for a given seed. Trials have configurations, learning curves, ``params`` and
``macs``, ``info`` with ``rung``/``bracket``, failures with tracebacks, and at the end some
trials still running and one queued, as a checkpoint taken mid-run would have them.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from ..store.base import DONE, FAILED, QUEUED, RUNNING, TrialRecord
from ..trial import Outcome, Suggestion

T0 = 1.7e9


def spec_text(metric: str = "valid_accuracy", mode: str = "max", max_trials: int = 64,
              max_seconds: Optional[float] = None) -> str:
    budget = f"max_trials: {max_trials}" + (f", max_seconds: {max_seconds:g}" if max_seconds else "")
    return (f"experiment: {{name: synthetic, seed: 0}}\nspace: {{builtin: chain}}\n"
            f"strategy: {{name: asha}}\nobjective: {{type: train, metric: {metric}, mode: {mode}}}\n"
            f"budget: {{{budget}}}\n")


def _curve(rng: np.random.Generator, quality: float, epochs: int) -> List[Dict[str, float]]:
    out = []
    for e in range(1, epochs + 1):
        acc = 0.1 + (quality - 0.1) * (1 - math.exp(-e / 3.0)) + rng.normal(0, 0.004)
        loss = 2.3 * (1 - acc) + 0.05 + rng.normal(0, 0.01)
        out.append({"epoch": e, "train_loss": loss * 0.9, "valid_loss": loss,
                    "valid_accuracy": acc, "seconds": 0.0})
    return out


@dataclass
class SyntheticRun:
    spec_text: str
    trials: List[TrialRecord]
    runtime: Dict[str, float] = field(default_factory=dict)
    jobs: List[str] = field(default_factory=list)

    def write(self, directory: str, commit_every: Optional[int] = 16):
        """Write it as an experiment in ``directory`` (through the real HDF5 store)."""
        from ..store.sample import write_experiment
        return write_experiment(directory, self.trials, self.spec_text, self.runtime, self.jobs,
                                commit_every)


def synthetic_run(n_trials: int = 60, groups: int = 4, seed: int = 0, spec: Optional[str] = None,
                  running: int = 2, queued: int = 1, now: Optional[float] = None) -> SyntheticRun:
    """``n_trials`` finished trials (about 10% failed) then ``running`` and ``queued`` ones.

    Times are shifted so that the last trial event is 30 s before ``now`` (default: the current
    time), as in a checkpoint saved during the run; everything else depends on ``seed`` only.
    """
    rng = np.random.default_rng(seed)
    budgets = [1, 3, 9]
    free = [T0 + 2.0 * g for g in range(groups)]  # when each group is next free
    trials: List[TrialRecord] = []
    done_at_rung: Dict[int, List[tuple]] = {0: [], 1: [], 2: []}
    total = n_trials + running + queued
    for i in range(total):
        rung = 0 if i < int(total * 0.6) else (1 if i < int(total * 0.87) else 2)
        prev = sorted(done_at_rung[rung - 1], key=lambda x: -x[1]) if rung else []
        if prev:
            parent, _, config = prev[(i * 7) % max(1, min(len(prev), 6))]
        else:
            parent, config = None, {"width": int(rng.choice([16, 32, 64, 128])),
                                    "depth": int(rng.integers(2, 9)),
                                    "lr": float(10 ** rng.uniform(-3.5, -1)),
                                    "op": str(rng.choice(["conv3x3", "conv5x5", "sepconv", "skip"]))}
        sug = Suggestion(i, config, float(budgets[rung]), parent, {"rung": rung, "bracket": 0})
        if i >= n_trials + running:
            trials.append(TrialRecord(sug, QUEUED))
            continue
        g = int(np.argmin(free))
        start = free[g] + rng.uniform(0.5, 3.0)
        params = 1000.0 * config["width"] ** 2 * config["depth"] / 16 + 5000
        macs = params * 256.0
        epoch_time = 20 + params / 2e4
        quality = (0.93 - 0.25 * abs(math.log10(config["lr"]) + 2.2) / 1.3
                   + 0.04 * math.log2(config["width"] / 16) / 3 - 0.05 * (config["op"] == "skip"))
        quality = min(0.97, quality + rng.normal(0, 0.01))
        epochs = budgets[rung]
        if i >= n_trials:
            trials.append(TrialRecord(sug, RUNNING, None, g, start, None, "1001"))
            free[g] = math.inf
            continue
        if rng.random() < 0.1:
            end = start + epoch_time * rng.uniform(0.2, 1.0)
            err = (f"RuntimeError: CUDA out of memory (trial {i})\nTraceback (most recent call last):\n"
                   f"  File \"train.py\", line 1")
            trials.append(TrialRecord(sug, FAILED, Outcome.failure(i, err), g, start, end, "1000"))
        else:
            end = start + epoch_time * epochs * rng.uniform(0.9, 1.1)
            curve = _curve(rng, quality, epochs)
            metrics = {"valid_accuracy": curve[-1]["valid_accuracy"], "valid_loss": curve[-1]["valid_loss"],
                       "train_loss": curve[-1]["train_loss"], "params": params, "macs": macs,
                       "epochs": float(epochs), "train_seconds": end - start}
            trials.append(TrialRecord(sug, DONE, Outcome(i, DONE, metrics, tuple(curve)), g, start, end,
                                      "1000" if i < n_trials // 2 else "1001"))
            done_at_rung[rung].append((i, metrics["valid_accuracy"], config))
        free[g] = end
    last = max(x for t in trials for x in (t.start, t.end) if x is not None)
    shift = (time.time() if now is None else now) - 30.0 - last
    for t in trials:
        t.start = None if t.start is None else t.start + shift
        t.end = None if t.end is None else t.end + shift
    runtime = {"elapsed_seconds": last - T0 + 32.0}
    return SyntheticRun(spec if spec is not None else spec_text(), trials, runtime, ["1000", "1001"])
