"""The events of a run, as the driver logs them: small frozen dataclasses with a JSON form.

``seq`` numbers the strategy calls (asks and tells) in the order they were made: a resume
restores the newest strategy snapshot and replays the calls after it in ``seq`` order.

* :class:`Asked` - the strategy proposed a trial (ask number ``seq``);
* :class:`Started` - a trial went to a worker group (counts an attempt);
* :class:`Finished` - its outcome came back and was told to the strategy (tell number ``seq``);
* :class:`Interrupted` - a group gave the trial back cleanly (a signal): it is queued again;
* :class:`StateSaved` / :class:`StateDropped` - a model state file was written by a group / is
  no longer kept (the file is deleted after this event is logged);
* :class:`JobStarted` - a new job (SLURM job id) continues the experiment.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Union

from ..trial import Outcome, Suggestion
from .base import StateRef


@dataclass(frozen=True)
class Asked:
    seq: int
    suggestion: Suggestion


@dataclass(frozen=True)
class Started:
    trial_id: int
    group: int
    start: float


@dataclass(frozen=True)
class Finished:
    seq: int
    outcome: Outcome
    end: float
    job_id: Optional[str] = None
    elapsed: float = 0.0  # the run's elapsed seconds (summed over jobs) when it finished


@dataclass(frozen=True)
class Interrupted:
    trial_id: int


@dataclass(frozen=True)
class StateSaved:
    ref: StateRef


@dataclass(frozen=True)
class StateDropped:
    ref: StateRef


@dataclass(frozen=True)
class JobStarted:
    job_id: str


Event = Union[Asked, Started, Finished, Interrupted, StateSaved, StateDropped, JobStarted]


def to_json(ev: Event) -> Dict[str, Any]:
    if isinstance(ev, Asked):
        return {"e": "ask", "seq": ev.seq, "s": ev.suggestion.to_dict()}
    if isinstance(ev, Started):
        return {"e": "start", "id": ev.trial_id, "g": ev.group, "t": ev.start}
    if isinstance(ev, Finished):
        return {"e": "fin", "seq": ev.seq, "o": ev.outcome.to_dict(), "t": ev.end, "job": ev.job_id,
                "el": ev.elapsed}
    if isinstance(ev, Interrupted):
        return {"e": "int", "id": ev.trial_id}
    if isinstance(ev, StateSaved):
        return {"e": "save", "ref": ev.ref.to_dict()}
    if isinstance(ev, StateDropped):
        return {"e": "drop", "ref": ev.ref.to_dict()}
    if isinstance(ev, JobStarted):
        return {"e": "job", "job": ev.job_id}
    raise TypeError(f"not an event: {ev!r}")


def from_json(d: Dict[str, Any]) -> Event:
    """The event of a JSON record; ``ValueError``/``KeyError``/``TypeError`` when malformed."""
    kind = d["e"]
    if kind == "ask":
        return Asked(int(d["seq"]), Suggestion.from_dict(d["s"]))
    if kind == "start":
        return Started(int(d["id"]), int(d["g"]), float(d["t"]))
    if kind == "fin":
        job = d.get("job")
        return Finished(int(d["seq"]), Outcome.from_dict(d["o"]), float(d["t"]),
                        None if job is None else str(job), float(d.get("el", 0.0)))
    if kind == "int":
        return Interrupted(int(d["id"]))
    if kind == "save":
        return StateSaved(StateRef.from_dict(d["ref"]))
    if kind == "drop":
        return StateDropped(StateRef.from_dict(d["ref"]))
    if kind == "job":
        return JobStarted(str(d["job"]))
    raise ValueError(f"unknown event kind {kind!r}")
