"""The public Python API: any strategy on your own space and objective, in this process.

    from nasrun.api import optimize, best_trial
    space = {"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
             "layers": {"type": "int", "low": 1, "high": 4}}
    trials = optimize(lambda config, budget: train(config, budget), space,
                      strategy="evolution", n_trials=50, metric="accuracy", mode="max")
    best = best_trial(trials, "accuracy", "max")

``objective_fn(config, budget)`` (or ``objective_fn(config, budget, context)``) returns a dict
of metrics or a float (stored under ``metric``); ``budget`` is ``None`` except for
multi-fidelity strategies, which need the budgets the function tells apart:
``objective={"fidelity": {"min": 1, "max": 27}}`` (or ``{"values": [...]}``; see
``objective.fidelity`` in the spec). ``context`` (:class:`~nasrun.objectives.FunctionContext`)
has ``state`` (the model state a promoted or resumed trial continues from),
``save_state(state)`` and ``report(epoch, metrics)``. An exception marks the trial failed and
the search goes on.

This runs the same driver as an MPI job: ``n_groups`` groups take turns in this process (their
trials overlap in simulated time), promoted trials get the lower rung's saved state back, and the
experiment is checkpointed to the real HDF5 store (a temporary directory unless ``directory``
is given; ``store="memory"`` keeps it in memory).
"""
from __future__ import annotations

import inspect
import json
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, List, Mapping, Optional, Union

from .objectives import FunctionContext, Objective, TrialResult
from .space import SearchSpace
from .trial import DONE, Outcome, Suggestion


@dataclass(frozen=True)
class Trial:
    suggestion: Suggestion
    outcome: Outcome


class _Callable(Objective):
    """A Python callable as an objective (the API's)."""

    def __init__(self, fn: Callable[..., Any], metric: str):
        self.fn, self.metric = fn, metric
        try:
            params = inspect.signature(fn).parameters
            self.with_context = len(params) >= 3 or any(
                p.kind == p.VAR_POSITIONAL for p in params.values())
        except (TypeError, ValueError):
            self.with_context = False

    def run(self, ctx):
        s = ctx.suggestion
        fc = FunctionContext(s.trial_id, s.budget, ctx.seed, ctx.options, ctx.state, ctx.control)
        value = self.fn(dict(s.config), s.budget, fc) if self.with_context \
            else self.fn(dict(s.config), s.budget)
        metrics = dict(value) if isinstance(value, Mapping) else {self.metric: float(value)}
        return TrialResult(Outcome(s.trial_id, DONE, {k: float(v) for k, v in metrics.items()},
                                   tuple(fc.curve), stopped_at=fc.stopped_at), None)


def _spec_text(space: SearchSpace, strategy: str, n_trials: int, seed: int, metric: str, mode: str,
               options: Mapping[str, Any], directory: str, extra: Mapping[str, Any]) -> str:
    doc = {"experiment": {"name": "api", "seed": seed, "output_dir": directory},
           "space": {"params": space.to_dict()},
           "strategy": {"name": strategy, "options": dict(options)},
           "objective": {"type": "function", "function": "nasrun.api:_placeholder",
                         "metric": metric, "mode": mode, **dict(extra.get("objective", {}))},
           "budget": {"max_trials": n_trials},
           "resources": {"max_consecutive_failures": 10 ** 9},
           "checkpoint": {"keep_best": 0}}
    return json.dumps(doc)


def _objective_keys(objective: Optional[Mapping[str, Any]], options: dict) -> dict:
    """The spec's objective keys, with the ``objectives``, ``constraints`` and ``scalarize``
    keywords of :func:`optimize` (Objective / Constraint values or mappings) moved there from
    the strategy's ``options``."""
    out = dict(objective or {})

    def plain(x: Any, keys) -> dict:
        d = dict(x) if isinstance(x, Mapping) else {k: getattr(x, k) for k in keys}
        return {k: v for k, v in d.items() if v is not None}
    if "objectives" in options:
        out["objectives"] = [plain(o, ("metric", "mode", "weight"))
                             for o in options.pop("objectives")]
    if "constraints" in options:
        out["constraints"] = [plain(c, ("metric", "min", "max"))
                              for c in options.pop("constraints")]
    if "scalarize" in options:
        out["scalarize"] = bool(options.pop("scalarize"))
    return out


def _placeholder(config, context):  # pragma: no cover - replaced by the caller's function
    raise RuntimeError("nasrun.api runs the function given to optimize()")


def optimize(objective_fn: Callable[..., Any],
             space: Union[SearchSpace, Mapping[str, Mapping[str, Any]]],
             strategy: str = "evolution", n_trials: int = 100, seed: int = 0,
             metric: str = "objective", mode: str = "max", n_groups: int = 1,
             directory: Optional[str] = None, store: str = "hdf5",
             objective: Optional[Mapping[str, Any]] = None, **options: Any) -> List[Trial]:
    """Run ``n_trials`` trials of ``strategy`` (a registered name) and return them in the order
    they finished. ``objective``: extra spec keys of the objective (e.g. a fidelity range);
    ``objectives``, ``constraints`` (:mod:`nasrun.multiobjective` values or mappings) and
    ``scalarize`` go there too; the other ``options`` are the strategy's."""
    import torch

    from .runtime.driver import Driver
    from .runtime.local import LocalTransport
    from .runtime.worker import TrialRunner
    from .spec import parse_spec
    from .store import MemoryStore, open_store
    from .train.backends import LocalBackend
    if not isinstance(space, SearchSpace):
        space = SearchSpace.from_dict(space)
    objective = _objective_keys(objective, options)
    tmp: Optional[tempfile.TemporaryDirectory[str]] = None
    if directory is None:
        tmp = tempfile.TemporaryDirectory(prefix="nasrun-api-")
        where = tmp.name
    else:
        where = directory
    try:
        text = _spec_text(space, strategy, n_trials, seed, metric, mode, options, where,
                          {"objective": dict(objective or {})})
        spec = parse_spec(text, "<nasrun.api.optimize>")
        st = open_store(where) if store == "hdf5" else MemoryStore()
        runner = TrialRunner(spec, _Callable(objective_fn, metric), LocalBackend(),
                             torch.device("cpu"), st.states)
        Driver(spec, text, st, LocalTransport(runner, n_groups), st.load(), echo=lambda line: None,
               progress=False).run()
        loaded = open_store(where).load() if store == "hdf5" else st.load()
        if loaded is None:  # the driver commits before it returns
            raise RuntimeError(f"{where}: the run left no checkpoint")
        records = sorted(loaded.state.finished_records(), key=lambda r: r.tell_seq)
        return [Trial(r.suggestion, r.outcome) for r in records]
    finally:
        if tmp is not None:
            tmp.cleanup()


def best_trial(trials: List[Trial], metric: str = "objective", mode: str = "max",
               constraints=()) -> Optional[Trial]:
    """The best finished trial (the one definition of "best", :mod:`nasrun.view`)."""
    from .multiobjective import Objective as Obj
    from .store.base import TrialRecord
    from .view import ExperimentView
    view = ExperimentView([Obj(metric, mode)], list(constraints))
    recs = [TrialRecord(t.suggestion, t.outcome.status, t.outcome) for t in trials]
    best = view.best(recs)
    return None if best is None else next(t for t in trials if t.suggestion.trial_id == best.trial_id)


__all__ = ["Trial", "best_trial", "optimize"]
