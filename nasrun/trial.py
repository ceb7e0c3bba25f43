"""The data every part of nasrun passes around: what to try, and what came of it.

This module imports nothing heavy. Strategies produce :class:`Suggestion` objects and consume
:class:`Outcome` objects; the runtime, the simulator and the store move them around. Both are
frozen and hold only JSON-able values, so they can be sent over MPI, written to HDF5 as JSON and
compared in tests.
"""
from __future__ import annotations

import enum
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple


class AskStatus(enum.Enum):
    """Answers of ``Strategy.ask()`` other than a suggestion."""

    WAIT = "wait"  # nothing to try until more results are told (e.g. a synchronous bracket)
    FINISHED = "finished"  # the strategy has nothing more to try, ever

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        return f"AskStatus.{self.name}"


WAIT = AskStatus.WAIT
FINISHED = AskStatus.FINISHED


@dataclass(frozen=True)
class Suggestion:
    """One trial to run.

    trial_id:    unique in the experiment, assigned by the strategy in ask order.
    config:      the configuration, a flat mapping of parameter name to value (JSON-able);
                 parameters whose condition is not met are absent.
    budget:      the resource to spend, for multi-fidelity strategies (e.g. epochs); ``None``
                 means the objective's full budget.
    resume_from: a finished trial whose saved model state this trial continues from (a promoted
                 configuration in Hyperband/ASHA), or ``None`` to start from scratch.
    info:        strategy bookkeeping worth recording (rung, bracket, replica...); JSON-able.
    """

    trial_id: int
    config: Mapping[str, Any]
    budget: Optional[float] = None
    resume_from: Optional[int] = None
    info: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        return {"trial_id": self.trial_id, "config": dict(self.config), "budget": self.budget,
                "resume_from": self.resume_from, "info": dict(self.info)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Suggestion":
        return cls(int(d["trial_id"]), dict(d["config"]), d.get("budget"), d.get("resume_from"),
                   dict(d.get("info") or {}))


DONE = "done"
FAILED = "failed"


@dataclass(frozen=True)
class Outcome:
    """What came of a trial.

    status:  ``"done"`` or ``"failed"``.
    metrics: final metrics (e.g. ``valid_accuracy``, ``valid_loss``, ``params``, ``train_seconds``).
    curve:   per-epoch metrics, oldest first (the learning curve); may be empty.
    error:   for a failed trial, the error message and the worker's traceback.
    stopped_at: the epoch after which a stopper ended the trial early (a finished trial with a
             partial curve, never a failure), or ``None``.
    """

    trial_id: int
    status: str
    metrics: Mapping[str, float] = field(default_factory=dict)
    curve: Tuple[Mapping[str, float], ...] = ()
    error: Optional[str] = None
    stopped_at: Optional[int] = None

    def __post_init__(self) -> None:
        if self.status not in (DONE, FAILED):
            raise ValueError(f"Outcome.status must be 'done' or 'failed', not {self.status!r}")

    @property
    def ok(self) -> bool:
        return self.status == DONE

    def value(self, metric: str) -> Optional[float]:
        """The metric's value, or None when the trial failed or the value is missing/not finite."""
        if not self.ok:
            return None
        v = self.metrics.get(metric)
        if v is None:
            return None
        v = float(v)
        return v if math.isfinite(v) else None

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["metrics"] = dict(self.metrics)
        d["curve"] = [dict(c) for c in self.curve]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Outcome":
        stopped = d.get("stopped_at")
        return cls(int(d["trial_id"]), d["status"], dict(d.get("metrics") or {}),
                   tuple(dict(c) for c in d.get("curve") or ()), d.get("error"),
                   None if stopped is None else int(stopped))

    @classmethod
    def failure(cls, trial_id: int, error: str) -> "Outcome":
        return cls(trial_id, FAILED, error=error)
