"""The interface every search strategy implements.

A strategy decides *what* to try next; it never sees MPI, files or clocks. The runtime (or the
simulator, or a user's own loop) drives it::

    strategy = make_strategy("evolution", space, seed=0, metric="valid_accuracy", mode="max")
    while True:
        s = strategy.ask()
        if s is FINISHED:
            break
        if s is WAIT:            # nothing to try until an outstanding result is told
            ...wait for a result...; continue
        outcome = run(s)         # anywhere, any time later, in any order
        strategy.tell(outcome)

Rules every implementation keeps:

* ``ask()`` may be called any number of times before results come back (asynchronous workers);
  trial ids are assigned in ask order and never reused.
* ``tell()`` accepts outcomes in any order, including failures; a failed trial (or one whose
  metric is missing or not finite) is never treated as a good or a bad result, only as "no
  information", so it cannot bias the search.
* ``state_dict()`` returns plain data only (dicts, lists, str, int, float, bool, None and numpy
  arrays), RNG state included; ``load_state_dict(state_dict())`` on a freshly constructed
  strategy with the same constructor arguments continues exactly: the next asks are the same as
  the uninterrupted strategy's.
"""
from __future__ import annotations

import abc
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..multiobjective import Constraint, Objective, Scorer
from ..space import SearchSpace
from ..trial import FINISHED, WAIT, AskStatus, Outcome, Suggestion

__all__ = ["Strategy", "AskStatus", "WAIT", "FINISHED", "rng_state", "set_rng_state"]


class Strategy(abc.ABC):
    """Base class: holds the space, the objective's direction, the RNG and the trial counter.

    ``metric`` is the name of the metric to optimise in ``Outcome.metrics``; ``mode`` is ``"max"``
    or ``"min"``. Subclasses use :meth:`score` (higher is better, ``None`` for no information).

    Several objectives (keyword ``objectives``: a list of
    :class:`~nasrun.multiobjective.Objective`, the first one is ``metric``/``mode``) and
    ``constraints`` (a list of :class:`~nasrun.multiobjective.Constraint`): an outcome that
    violates a constraint scores ``None`` (never a parent, never the best). With
    ``scalarize=True`` :meth:`score` is the weighted sum of the oriented objectives and every
    strategy works unchanged; otherwise :meth:`score` is the first objective's and only
    strategies with ``multi_objective = True`` accept more than one objective (they rank by
    :meth:`point`, see :mod:`nasrun.multiobjective`).
    """

    #: options a subclass accepts, with their defaults (the spec validates against this)
    options: Dict[str, Any] = {}
    #: whether the strategy hands out budgets (multi-fidelity)
    multi_fidelity = False
    #: whether the strategy uses every objective (Pareto ranking) rather than a single score
    multi_objective = False

    def __init__(self, space: SearchSpace, seed: int = 0, metric: str = "valid_accuracy",
                 mode: str = "max", objectives: Optional[Sequence[Objective]] = None,
                 constraints: Sequence[Constraint] = (), scalarize: bool = False, **options: Any):
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', not {mode!r}")
        self.objectives: List[Objective] = list(objectives or [Objective(metric, mode)])
        if (self.objectives[0].metric, self.objectives[0].mode) != (metric, mode):
            raise ValueError("the first objective must be metric/mode")
        if len(self.objectives) > 1 and not scalarize and not self.multi_objective:
            raise ValueError(f"strategy {type(self).__name__} optimises one objective; use random "
                             "or evolution for several, or scalarize them (objective.scalarize: true)")
        self.constraints: List[Constraint] = list(constraints)
        self.scalarize = bool(scalarize)
        self.scorer = Scorer(self.objectives, self.constraints, self.scalarize)
        unknown = set(options) - set(self.options)
        if unknown:
            raise ValueError(f"{type(self).__name__}: unknown options {sorted(unknown)}")
        self.space = space
        self.seed = seed
        self.metric = metric
        self.mode = mode
        self.opts: Dict[str, Any] = {**self.options, **options}
        self.rng = np.random.default_rng(seed)
        self.next_id = 0
        self.pending: Dict[int, Suggestion] = {}

    # -- what subclasses implement ---------------------------------------------------------
    @abc.abstractmethod
    def ask(self) -> Union[Suggestion, AskStatus]:
        """The next trial, or ``WAIT`` (nothing until a result comes), or ``FINISHED``."""

    @abc.abstractmethod
    def tell(self, outcome: Outcome) -> None:
        """Report what came of an asked trial (any order, failures included)."""

    def _state(self) -> Dict[str, Any]:
        """Subclass state beyond the base's (plain data)."""
        return {}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        pass

    # -- shared helpers --------------------------------------------------------------------
    def score(self, outcome: Outcome) -> Optional[float]:
        """Higher is better; None for a failed, incomplete or infeasible outcome."""
        return self.scorer.score(outcome)

    def point(self, outcome: Outcome) -> Optional[Tuple[float, ...]]:
        """The outcome's oriented objective values (higher is better), None when it is failed,
        incomplete or infeasible."""
        return self.scorer.point(outcome)

    def promotable(self, trial_id: int) -> bool:
        """Whether a decision of this strategy may still continue finished trial ``trial_id``
        from its saved model state (a multi-fidelity promotion). The runtime deletes a state as
        soon as no such decision can use it; False (the default) for strategies that never
        continue a trial."""
        return False

    @property
    def pareto(self) -> bool:
        """Whether selection ranks by Pareto dominance (several objectives, not scalarized)."""
        return len(self.objectives) > 1 and not self.scalarize

    def _new(self, config: Mapping[str, Any], budget: Optional[float] = None,
             resume_from: Optional[int] = None, **info: Any) -> Suggestion:
        s = Suggestion(self.next_id, dict(config), budget, resume_from, info)
        self.next_id += 1
        self.pending[s.trial_id] = s
        return s

    def _take(self, outcome: Outcome) -> Suggestion:
        """The pending suggestion ``outcome`` answers; a clear error for an unknown id."""
        try:
            return self.pending.pop(outcome.trial_id)
        except KeyError:
            raise KeyError(f"trial {outcome.trial_id} was not asked or was already told") from None

    def state_dict(self) -> Dict[str, Any]:
        return {"next_id": self.next_id, "rng": rng_state(self.rng),
                "pending": [s.to_dict() for s in self.pending.values()],
                "strategy": self._state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.next_id = int(state["next_id"])
        set_rng_state(self.rng, state["rng"])
        self.pending = {int(d["trial_id"]): Suggestion.from_dict(d) for d in state["pending"]}
        self._load_state(state["strategy"])


def rng_state(rng: np.random.Generator) -> Dict[str, Any]:
    """A numpy Generator's state as JSON-able data (ints as decimal strings: they exceed 64 bits)."""
    st = rng.bit_generator.state
    return {"bit_generator": st["bit_generator"],
            "state": {k: str(v) for k, v in st["state"].items()},
            "has_uint32": int(st["has_uint32"]), "uinteger": int(st["uinteger"])}


def set_rng_state(rng: np.random.Generator, d: Mapping[str, Any]) -> None:
    rng.bit_generator.state = {"bit_generator": d["bit_generator"],
                               "state": {k: int(v) for k, v in d["state"].items()},
                               "has_uint32": int(d["has_uint32"]), "uinteger": int(d["uinteger"])}


def best(outcomes: List[Outcome], strategy: Strategy) -> Optional[Outcome]:
    pairs = [(strategy.score(o), o) for o in outcomes]
    scored = [(s, o) for s, o in pairs if s is not None]
    return max(scored, key=lambda t: t[0])[1] if scored else None
