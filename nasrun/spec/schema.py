"""The experiment spec: one frozen dataclass per YAML section, validated before anything runs.

See ``configs/`` for commented examples and ``nasrun init`` for a starter spec.
"""
from __future__ import annotations

import heapq
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Literal, Mapping, Optional, Tuple

from ..space import BUILTIN_OPTIONS, SearchSpace, builtin_params, param_from_dict
from ..space.builtin import option_problem
from .fields import Ctx, build, check_name, describe, field, join, shorten, suggest
from .slurm import SlurmSpec

if TYPE_CHECKING:  # importing nasrun.strategies imports torch: only where strategies are built
    from ..multiobjective import Constraint, Objective
    from ..strategies.fidelity import Fidelities

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"
INT64_MIN, INT64_MAX = -2 ** 63, 2 ** 63 - 1  # integer parameters and choices are stored as int64


def _names(names: Iterable[str], limit: int = 12) -> str:
    """Names for a message, at most ``limit`` of them."""
    short = [shorten(n, 40, quote=False) for n in names]
    if len(short) <= limit:
        return ", ".join(short)
    return ", ".join(short[:limit]) + f", ... ({len(short)} in all)"


@dataclass(frozen=True)
class ExperimentSpec:
    name: str = field(pattern=NAME_PATTERN, help="letters, digits, '.', '_' and '-'",
                      pattern_help="expected a name of letters, digits, '.', '_' and '-' "
                                   "(at most 100, not starting with '.', '_' or '-')")
    output_dir: Optional[str] = None  # default: runs/<name>, relative to the working directory
    seed: int = field(0, min=0, max=2 ** 32 - 1)  # numpy and torch seeds: 32 bits

    def _check(self, path: str, ctx: Ctx, data: Mapping[str, Any]) -> None:
        pass

    @property
    def directory(self) -> str:
        return self.output_dir or os.path.join("runs", self.name)


PARAM_KEYS = {"categorical": {"type", "choices", "when"},
              "int": {"type", "low", "high", "log", "when"},
              "float": {"type", "low", "high", "log", "when"}}


@dataclass(frozen=True)
class SpaceSpec:
    builtin: Optional[Literal["chain", "nb201"]] = None
    options: Dict[str, Any] = field({})
    params: Dict[str, Any] = field({})

    def _check(self, path: str, ctx: Ctx, data: Mapping[str, Any]) -> None:
        if self.builtin is None and not self.params:
            raise ctx.error("the space is empty: give 'builtin: chain' or 'builtin: nb201' and/or 'params'",
                            path, data)
        if self.builtin is None and self.options:
            raise ctx.error("'options' configure a builtin space; set 'builtin' too", join(path, "options"),
                            data, "options")
        if self.builtin is not None:
            defaults = BUILTIN_OPTIONS[self.builtin]
            opts = data.get("options") or {}
            for k, v in self.options.items():
                p = join(join(path, "options"), k)
                if k not in defaults:
                    raise ctx.error(f"unknown option of the {self.builtin} space{suggest(k, defaults)}; "
                                    f"expected one of: {', '.join(defaults)}", p, opts, k)
                _check_like(defaults[k], v, p, ctx, opts, k)
            problem = option_problem(self.builtin, self.options)
            if problem:
                key, message = problem
                raise ctx.error(message, join(join(path, "options"), key), opts if key in opts else data,
                                key if key in opts else "options")
        raw = data.get("params") or {}
        builtin = {p.name: p for p in (builtin_params(self.builtin, self.options) if self.builtin else [])}
        own = {}
        for name, spec in self.params.items():
            p = join(join(path, "params"), name)
            check_name(name, "a parameter name", p, ctx, raw, name)
            if name in builtin:
                raise ctx.error(f"parameter {shorten(name)} is already defined by the {self.builtin} space",
                                p, raw, name)
            _check_param(name, spec, p, ctx, raw)
            own[name] = param_from_dict(name, _param_dict(spec))
        known = {**builtin, **own}
        for name, param in own.items():
            when = _param_dict(self.params[name]).get("when") or {}
            for parent, allowed in param.when.items():
                wp = join(join(join(join(path, "params"), name), "when"), parent)
                if parent == name:
                    raise ctx.error("a parameter cannot have a condition on itself", wp, when, parent)
                if parent not in known:
                    raise ctx.error(f"condition on unknown parameter {shorten(parent)}"
                                    f"{suggest(parent, known)}; "
                                    f"expected one of: {_names(n for n in known if n != name)}",
                                    wp, when, parent)
                for v in allowed:
                    if not known[parent].contains(v):
                        raise ctx.error(f"{shorten(v)} is not a value of parameter {shorten(parent)}", wp,
                                        when, parent)
        try:
            _ordered(own)
        except ValueError as e:
            raise ctx.error(str(e), join(path, "params"), data, "params") from None
        try:
            self.build()
        except ValueError as e:
            raise ctx.error(str(e), path, data) from None

    def build(self) -> SearchSpace:
        params = builtin_params(self.builtin, self.options) if self.builtin else []
        own = {name: param_from_dict(name, _param_dict(spec)) for name, spec in self.params.items()}
        return SearchSpace(params + _ordered(own))


def _ordered(params: Mapping[str, Any]) -> List[Any]:
    """Parameters in spec order, moved after the parameters their conditions name (stable):
    each step places the first parameter, in spec order, whose conditions name placed ones only."""
    names = list(params)
    index = {name: i for i, name in enumerate(names)}
    waiting = {name: 0 for name in names}  # parents not placed yet
    children: Dict[str, List[str]] = {name: [] for name in names}
    for name, p in params.items():
        for parent in p.when:
            if parent in params:
                waiting[name] += 1
                children[parent].append(name)
    ready = [index[n] for n in names if waiting[n] == 0]
    heapq.heapify(ready)
    out: List[Any] = []
    while ready:
        name = names[heapq.heappop(ready)]
        out.append(params[name])
        for child in children[name]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, index[child])
    if len(out) < len(names):
        raise ValueError("conditions form a cycle: " + _names(n for n in names if waiting[n] > 0))
    return out


def _check_like(default: Any, value: Any, path: str, ctx: Ctx, parent: Any, key: Any) -> None:
    """A builtin option must have the type of its default."""
    if default is None or isinstance(default, list):
        if not isinstance(value, list) or not value:
            raise ctx.error(f"expected a non-empty list, got {describe(value)}", path, parent, key)
        return
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    else:
        ok = isinstance(value, type(default))
    if not ok:
        want = {bool: "true or false", int: "an integer >= 1", str: "a string"}.get(type(default), "a value")
        raise ctx.error(f"expected {want}, got {describe(value)}", path, parent, key)


def _param_dict(spec: Any) -> Dict[str, Any]:
    return {"type": "categorical", "choices": spec} if isinstance(spec, list) else dict(spec)


def _check_param(name: str, spec: Any, path: str, ctx: Ctx, parent: Any) -> None:
    if isinstance(spec, list):
        spec = {"type": "categorical", "choices": spec}
        parent_line_src = parent
    elif isinstance(spec, Mapping):
        parent_line_src = spec
    else:
        raise ctx.error("expected a parameter: a list of choices, or a mapping with 'type' "
                        "(categorical, int or float)", path, parent, name)
    kind = spec.get("type")
    if not isinstance(kind, str) or kind not in PARAM_KEYS:
        raise ctx.error(f"expected type: categorical, int or float, got {describe(kind)}"
                        f"{suggest(kind, PARAM_KEYS) if isinstance(kind, str) else ''}",
                        join(path, "type"), parent_line_src, "type")
    for k in spec:
        if k not in PARAM_KEYS[kind]:
            raise ctx.error(f"unknown key for a {kind} parameter{suggest(k, PARAM_KEYS[kind])}; "
                            f"expected one of: {', '.join(sorted(PARAM_KEYS[kind]))}",
                            join(path, k), parent_line_src, k)
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ctx.error(f"expected a non-empty list of choices, got {describe(choices)}",
                            join(path, "choices"), parent_line_src, "choices")
        for c in choices:
            if not isinstance(c, (str, int, float, bool)) or c is None:
                raise ctx.error(f"choices must be strings, numbers or booleans, got {describe(c)}",
                                join(path, "choices"), parent_line_src, "choices")
            if isinstance(c, int) and not INT64_MIN <= c <= INT64_MAX:
                raise ctx.error(f"an integer choice must lie between -2^63 and 2^63-1 (int64), got "
                                f"{shorten(c)}", join(path, "choices"), parent_line_src, "choices")
        if len({(type(c).__name__, c) for c in choices}) != len(choices):
            raise ctx.error("choices must be distinct", join(path, "choices"), parent_line_src, "choices")
    else:
        num = int if kind == "int" else (int, float)
        for b in ("low", "high"):
            v = spec.get(b)
            if isinstance(v, bool) or not isinstance(v, num) or (isinstance(v, float) and v != v) \
                    or v in (float("inf"), float("-inf")):
                want = "an integer" if kind == "int" else "a finite number"
                raise ctx.error(f"expected {want}, got {describe(v)}", join(path, b), parent_line_src, b)
            if kind == "int" and not INT64_MIN <= v <= INT64_MAX:
                raise ctx.error(f"expected an integer between -2^63 and 2^63-1 (int64), got {shorten(v)}",
                                join(path, b), parent_line_src, b)
        if spec["low"] > spec["high"]:
            raise ctx.error(f"low ({spec['low']}) must not exceed high ({spec['high']})", path,
                            parent_line_src, "low")
        log = spec.get("log", False)
        if not isinstance(log, bool):
            raise ctx.error(f"expected true or false, got {describe(log)}", join(path, "log"),
                            parent_line_src, "log")
        if log and spec["low"] <= 0:
            raise ctx.error(f"a log scale needs low > 0, got low = {spec['low']}", join(path, "low"),
                            parent_line_src, "low")
    when = spec.get("when")
    if when is not None and not isinstance(when, Mapping):
        raise ctx.error("expected a mapping of parameter: value or [values]", join(path, "when"),
                        parent_line_src, "when")
    # which parameters exist is checked when the space is built (SearchSpace raises ValueError)


@dataclass(frozen=True)
class DatasetSpec:
    name: Literal["digits", "cifar10", "file"] = "digits"
    path: Optional[str] = None  # cifar10: the directory; file: an .npz or .h5 file with x and y
    x_key: str = "x"
    y_key: str = "y"
    valid_fraction: float = field(0.2, gt=0.0, max=0.9)
    limit: Optional[int] = field(None, min=10)  # use only the first N samples (quick tries)

    def _check(self, path: str, ctx: Ctx, data: Mapping[str, Any]) -> None:
        if self.name in ("cifar10", "file"):
            if not self.path:
                raise ctx.error(f"the {self.name} dataset needs 'path'", join(path, "path"), data)
            p = os.path.expandvars(os.path.expanduser(self.path))
            if "$" in p:
                raise ctx.error(f"{shorten(self.path, quote=False)}: an environment variable in the path is "
                                "not set", join(path, "path"), data, "path")
            if not os.path.exists(p):
                raise ctx.error(f"dataset not found: {shorten(p, quote=False)} (no downloads: point 'path' "
                                "at the data "
                                "on your file system)", join(path, "path"), data, "path")


@dataclass(frozen=True)
class OptimizerSpec:
    name: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = field(1e-3, gt=0.0)
    momentum: float = field(0.9, min=0.0, max=1.0)
    weight_decay: float = field(0.0, min=0.0)


@dataclass(frozen=True)
class ObjectiveTermSpec:
    """One of several objectives (``objective.objectives[i]``)."""

    metric: str = field(name="metric")
    mode: Literal["max", "min"] = "max"
    weight: float = field(1.0, gt=0.0)  # used only with objective.scalarize: true

    def _check(self, path: str, ctx: Ctx, data: Mapping[str, Any]) -> None:
        pass


@dataclass(frozen=True)
class ConstraintSpec:
    """``objective.constraints[i]``: min <= metric <= max; a trial outside is infeasible."""

    metric: str = field(name="metric")
    min: Optional[Any] = None  # a number; YAML reads 1.0e6 (no exponent sign) as a string: accepted
    max: Optional[Any] = None

    def _check(self, path: str, ctx: Ctx, data: Mapping[str, Any]) -> None:
        for key in ("min", "max"):
            v = getattr(self, key)
            if v is None:
                continue
            try:
                if isinstance(v, bool):
                    raise ValueError
                f = float(v)
                if f != f or f in (float("inf"), float("-inf")):
                    raise ValueError
            except (TypeError, ValueError):
                raise ctx.error(f"expected a finite number, got {describe(v)}", join(path, key),
                                data, key) from None
            object.__setattr__(self, key, f)
        if self.min is None and self.max is None:
            raise ctx.error("a constraint needs 'min' and/or 'max'", path, data)
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ctx.error(f"min ({self.min:g}) exceeds max ({self.max:g})", join(path, "min"), data, "min")


@dataclass(frozen=True)
class DurationSpec:
    """How long a trial would train, for ``nasrun simulate`` of a function objective: the value
    of a metric the function returns (``metric: train_seconds``), or a constant per full
    budget (``seconds: 600``; a multi-fidelity trial takes its share of the budget)."""

    metric: Optional[str] = field(None, name="metric")
    seconds: Optional[float] = field(None, gt=0.0)

    def _check(self, path: str, ctx: Ctx, data: Mapping[str, Any]) -> None:
        if (self.metric is None) == (self.seconds is None):
            raise ctx.error("give one of 'metric' (a metric the function returns) or 'seconds'",
                            path, data)


@dataclass(frozen=True)
class FidelitySpec:
    """``objective.fidelity`` of a function objective: the budgets its function reads
    (``context.budget``) and at which its result can differ, for multi-fidelity strategies:
    every number from ``min`` to ``max``, every integer there (``integer: true``), or only
    ``values`` (``min``/``max``, when given too, must be their lowest and highest)."""

    min: Optional[float] = field(None, gt=0.0)
    max: Optional[float] = field(None, gt=0.0)
    values: List[float] = field([])
    integer: bool = False

    def _check(self, path: str, ctx: Ctx, data: Mapping[str, Any]) -> None:
        for i, v in enumerate(self.values):
            if not v > 0:
                raise ctx.error(f"expected a number > 0, got {shorten(v)}", join(path, f"values[{i}]"),
                                data, "values")
        if self.values:
            if self.integer:
                raise ctx.error("'integer' describes a min-max range; 'values' already lists every "
                                "fidelity (give one or the other)", join(path, "integer"), data, "integer")
            for key, want in (("min", min(self.values)), ("max", max(self.values))):
                got = getattr(self, key)
                if got is not None and got != want:
                    raise ctx.error(f"{got:g} is not the {'lowest' if key == 'min' else 'highest'} of "
                                    f"'values' ({want:g}); expected {want:g}, or leave '{key}' out",
                                    join(path, key), data, key)
                object.__setattr__(self, key, want)  # min and max are always the range's ends
            return
        if self.min is None or self.max is None:
            raise ctx.error("expected 'min' and 'max' (the lowest and highest budget), or 'values' "
                            "(every budget)", path, data)
        if self.min > self.max:
            raise ctx.error(f"min ({self.min:g}) exceeds max ({self.max:g})", join(path, "min"), data,
                            "min")
        if self.integer and math.ceil(self.min) > self.max:
            raise ctx.error(f"no integer lies between min ({self.min:g}) and max ({self.max:g})",
                            join(path, "integer"), data, "integer")

    def fidelities(self) -> Fidelities:
        from ..strategies.fidelity import Fidelities
        if self.values:
            return Fidelities.of(min(self.values), max(self.values), self.values)
        assert self.min is not None and self.max is not None  # checked by _check
        return Fidelities.of(self.min, self.max, integer=self.integer)


@dataclass(frozen=True)
class ObjectiveSpec:
    type: Literal["train", "table", "function"] = "train"
    # One objective: metric/mode. Several: objectives (metric/mode are then the first one's).
    metric: str = field("valid_accuracy", name="metric")
    mode: Literal["max", "min"] = "max"
    objectives: List[ObjectiveTermSpec] = field([])
    constraints: List[ConstraintSpec] = field([])
    scalarize: bool = False  # weighted sum of the objectives: any strategy can then use them
    # type: train
    dataset: DatasetSpec = field(DatasetSpec())
    epochs: int = field(5, min=1)
    min_epochs: int = field(1, min=1)  # the lowest budget for multi-fidelity strategies
    batch_size: int = field(64, min=1)
    optimizer: OptimizerSpec = field(OptimizerSpec())
    # type: table
    benchmark: Literal["nb201"] = "nb201"
    path: Optional[str] = None  # default: ../shared/benchmarks/nb201 or $NASRUN_NB201
    # type: function
    function: Optional[str] = field(None, pattern=r"[A-Za-z_][\w.]*:[A-Za-z_]\w*",
                                    pattern_help="expected 'module:function'")
    python_path: List[str] = field([])
    options: Dict[str, Any] = field({})
    duration: Optional[DurationSpec] = None  # simulated training time (nasrun simulate)
    deterministic: bool = False  # same configuration and budget, same result (strategy.dedupe)
    fidelity: Optional[FidelitySpec] = None  # the budgets a multi-fidelity strategy may give it

    def __post_init__(self) -> None:
        if self.objectives:  # metric/mode always name the first (main) objective
            object.__setattr__(self, "metric", self.objectives[0].metric)
            object.__setattr__(self, "mode", self.objectives[0].mode)

    def _check(self, path: str, ctx: Ctx, data: Mapping[str, Any]) -> None:
        if self.objectives:
            for key in ("metric", "mode"):
                if key in data and data[key] != getattr(self.objectives[0], key):
                    raise ctx.error(f"{key} {shorten(data[key])} differs from the first of 'objectives' "
                                    f"({shorten(getattr(self.objectives[0], key))}); give the objectives in "
                                    "'objectives' only", join(path, key), data, key)
            seen = set()
            for i, o in enumerate(self.objectives):
                if o.metric in seen:
                    raise ctx.error(f"metric {shorten(o.metric)} is named twice",
                                    join(path, f"objectives[{i}].metric"),
                                    data, "objectives")
                seen.add(o.metric)
        if self.scalarize and len(self.objectives) < 2:
            raise ctx.error("scalarize needs at least two entries in 'objectives'", join(path, "scalarize"),
                            data, "scalarize")
        if self.min_epochs > self.epochs:
            raise ctx.error(f"min_epochs ({self.min_epochs}) must not exceed epochs ({self.epochs})",
                            join(path, "min_epochs"), data, "min_epochs")
        if self.deterministic and self.type == "train":
            raise ctx.error("training is not deterministic; to never train a configuration twice "
                            "anyway, set 'strategy.dedupe: true'", join(path, "deterministic"),
                            data, "deterministic")
        if self.fidelity is not None and self.type != "function":
            declared = (f"every integer epoch from min_epochs ({self.min_epochs}) to epochs ({self.epochs})"
                        if self.type == "train" else "12 and 200 epochs")
            raise ctx.error(f"only a function objective declares its fidelities; a {self.type} objective's "
                            f"are {declared} (remove 'fidelity')", join(path, "fidelity"), data, "fidelity")
        if self.type == "function" and not self.function:
            raise ctx.error("an objective of type function needs 'function: module:function'",
                            join(path, "function"), data)
        if self.type == "table" and self.path is not None \
                and not os.path.exists(os.path.expanduser(self.path)):
            raise ctx.error(f"benchmark table not found: {shorten(self.path, quote=False)} (a directory "
                            "holding the "
                            "tables, or a table file)", join(path, "path"), data, "path")


@dataclass(frozen=True)
class BudgetSpec:
    max_trials: Optional[int] = field(20, min=1)
    max_seconds: Optional[float] = field(None, gt=0.0)
    target: Optional[float] = None  # stop when the best metric reaches this value
    max_epochs: Optional[float] = field(None, gt=0.0)  # training work: epochs summed over trials

    def _check(self, path: str, ctx: Ctx, data: Mapping[str, Any]) -> None:
        if self.max_trials is None and self.max_seconds is None and self.target is None \
                and self.max_epochs is None:
            raise ctx.error("the search needs an end: set max_trials, max_seconds, max_epochs or "
                            "target", path, data)


@dataclass(frozen=True)
class ResourcesSpec:
    ranks_per_trial: int = field(1, min=1)
    gpus_per_group: int = field(0, min=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    backend: Literal["auto", "horovod", "torch"] = "auto"
    trial_time_limit: Optional[float] = field(None, gt=0.0)  # seconds
    max_consecutive_failures: int = field(5, min=1)
    threads_per_rank: Optional[int] = field(None, min=1, max=4096)  # more than any node has
    # a trial in flight when its rank died (or the job was killed) this many times is failed
    max_attempts: int = field(2, min=1)
    # a worker waiting for work exits after this long without a word from rank 0 (seconds)
    orphan_timeout: float = field(600.0, gt=0.0)
    # at the end of a run, how long rank 0 waits for groups still starting up (seconds)
    shutdown_grace: float = field(60.0, gt=0.0)


@dataclass(frozen=True)
class CheckpointSpec:
    every_epochs: int = field(1, min=1)  # in-flight weights every K epochs...
    every_seconds: float = field(60.0, gt=0.0)  # ...or at least T seconds apart, whichever is later
    generations: int = field(2, min=2, max=100)  # checkpoint generations kept on disk
    keep_best: int = field(3, min=0)  # final weights of the K best finished trials (for export)


SECTIONS = ("experiment", "space", "strategy", "objective", "budget", "resources", "checkpoint", "slurm")


def option_type_problem(default: Any, value: Any) -> Optional[str]:
    """What is wrong with the type of an option ``value`` whose default is ``default``, or None."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
    elif default is None:
        ok = True
    else:
        ok = isinstance(value, type(default))
    if ok:
        return None
    want = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a mapping"}.get(type(default), type(default).__name__)
    return f"expected {want}, got {describe(value)}"


@dataclass(frozen=True)
class StopperChoice:
    """``strategy.stopper`` once validated: the stopper's name and its options."""

    name: str
    options: Mapping[str, Any]


@dataclass(frozen=True)
class StrategySpec:
    name: str = "random"
    options: Dict[str, Any] = field({})
    # never evaluate a configuration twice at the same budget (nasrun.strategies.dedupe);
    # default: on where evaluations are deterministic (a table; objective.deterministic)
    dedupe: Optional[bool] = None
    # a stopper in front of the strategy: a name (median, curve) or {name: NAME, OPTION: VALUE...}
    stopper: Any = None

    @property
    def stopper_choice(self) -> Optional[StopperChoice]:
        """The validated ``stopper`` as a name and options, None without one."""
        if self.stopper is None:
            return None
        if isinstance(self.stopper, str):
            return StopperChoice(self.stopper, {})
        d = dict(self.stopper)
        return StopperChoice(str(d.pop("name")), d)

    def _check(self, path: str, ctx: Ctx, data: Mapping[str, Any]) -> None:
        from ..strategies.registry import DECLARED
        from .preflight import strategy_option_problem
        if self.name not in DECLARED:
            raise ctx.error(f"unknown strategy {shorten(self.name)}{suggest(self.name, DECLARED)}; "
                            "expected one "
                            f"of: {', '.join(DECLARED)}", join(path, "name"), data, "name")
        accepted = DECLARED[self.name].options
        opts = data.get("options") or {}
        for k, v in self.options.items():
            p = join(join(path, "options"), k)
            if k not in accepted:
                raise ctx.error(f"unknown option of strategy {shorten(self.name)}{suggest(k, accepted)}; "
                                "expected "
                                f"one of: {', '.join(accepted) or '(none)'}", p, opts, k)
            problem = option_type_problem(accepted[k], v)
            if problem:
                raise ctx.error(problem, p, opts, k)
            problem = strategy_option_problem(k, v)  # before the strategy is built (memory)
            if problem:
                raise ctx.error(f"{problem} for strategy {shorten(self.name)}", p, opts, k)
        if self.stopper is not None:
            self._check_stopper(join(path, "stopper"), ctx, data)

    def _check_stopper(self, path: str, ctx: Ctx, data: Mapping[str, Any]) -> None:
        from ..stoppers import STOPPERS
        from ..strategies import STRATEGIES
        names = ", ".join(STOPPERS)
        raw = self.stopper
        if isinstance(raw, Mapping):
            if "name" not in raw:
                raise ctx.error(f"the stopper needs a name (one of: {names}), e.g. "
                                "{name: curve, threshold: 0.05}", path, data, "stopper")
            name, where, parent = raw["name"], join(path, "name"), raw
        elif isinstance(raw, str):
            name, where, parent = raw, path, data
        else:
            raise ctx.error(f"expected a stopper name ({names}) or a mapping {{name: NAME, "
                            f"OPTION: VALUE...}}, got {describe(raw)}", path, data, "stopper")
        if not isinstance(name, str) or name not in STOPPERS:
            hint = suggest(name, STOPPERS) if isinstance(name, str) else ""
            raise ctx.error(f"unknown stopper {shorten(name)}{hint}; expected one of: {names}", where,
                            parent, "name" if parent is raw else "stopper")
        if STRATEGIES[self.name].multi_fidelity:
            raise ctx.error(f"strategy {shorten(self.name)} is multi-fidelity: it stops trials at its "
                            "own rungs, a stopper cannot be combined with it; use a stopper with a "
                            "single-fidelity strategy (" + ", ".join(
                                n for n, c in STRATEGIES.items() if not c.multi_fidelity) + ")",
                            path, data, "stopper")
        cls = STOPPERS[name]
        for k, v in (raw.items() if isinstance(raw, Mapping) else ()):
            if k == "name":
                continue
            p = join(path, k)
            if k not in cls.options:
                raise ctx.error(f"unknown option of stopper {shorten(name)}{suggest(str(k), cls.options)}; "
                                f"expected one of: {', '.join(cls.options)}", p, raw, k)
            problem = option_type_problem(cls.options[k], v) or cls.option_problem(k, v)
            if problem:
                raise ctx.error(problem, p, raw, k)


@dataclass(frozen=True)
class Spec:
    experiment: ExperimentSpec
    space: SpaceSpec
    strategy: StrategySpec = field(StrategySpec())
    objective: ObjectiveSpec = field(ObjectiveSpec())
    budget: BudgetSpec = field(BudgetSpec())
    resources: ResourcesSpec = field(ResourcesSpec())
    checkpoint: CheckpointSpec = field(CheckpointSpec())
    slurm: SlurmSpec = field(SlurmSpec())

    def _check(self, path: str, ctx: Ctx, data: Mapping[str, Any]) -> None:
        from ..strategies.registry import DECLARED
        cls = DECLARED[self.strategy.name]
        if self.objective.type == "table" and self.space.builtin != "nb201":
            raise ctx.error("a table objective (NAS-Bench-201) needs 'space: {builtin: nb201}'",
                            "objective.type", data.get("objective"), "type")
        o = self.objective
        if len(o.objectives) > 1 and not o.scalarize and not cls.multi_objective:
            multi = " or ".join(n for n, c in DECLARED.items() if c.multi_objective)
            raise ctx.error(f"strategy {self.strategy.name!r} optimises one objective; with several "
                            f"objectives use {multi}, or set 'objective.scalarize: true' (weighted sum)",
                            "objective.objectives", data.get("objective"), "objectives")
        if self.strategy.stopper is not None and o.type == "table":
            raise ctx.error("a stopper needs per-epoch metrics; a table objective reports only final "
                            "ones (use a train or function objective)", "strategy.stopper",
                            data.get("strategy"), "stopper")
        if cls.multi_fidelity:
            self._check_fidelity(ctx, data)
        if not cls.requires:  # a strategy that needs more than numpy is built when a run starts
            try:
                self.make_strategy()
            except (ValueError, TypeError) as e:
                raise ctx.error(str(e), "strategy.options", data.get("strategy"), "options") from None

    def _check_fidelity(self, ctx: Ctx, data: Mapping[str, Any]) -> None:
        """A multi-fidelity strategy needs an objective that declares its fidelities, and budgets
        within them."""
        name = self.strategy.name
        fid = self.fidelities()
        if fid is None:
            raw = data.get("objective") or {}
            hint = (" (objective.min_epochs and epochs are the train objective's epochs, not a "
                    "function's budgets)" if "min_epochs" in raw or "epochs" in raw else "")
            raise ctx.error(f"strategy {name!r} gives each trial a budget (multi-fidelity), but the "
                            f"function objective declares no fidelities{hint}; expected "
                            "'fidelity: {min: LOW, max: HIGH}' or 'fidelity: {values: [...]}' (the "
                            "budgets the function reads as context.budget), or a single-fidelity "
                            "strategy",
                            "objective.fidelity", raw, "type")
        opts = data.get("strategy", {}).get("options") or {}
        for key in ("min_budget", "max_budget"):
            v = self.strategy.options.get(key)
            if v is not None and not fid.low <= float(v) <= fid.high:
                raise ctx.error(f"{float(v):g} is outside the fidelities the objective declares "
                                f"({fid.describe()}); expected a budget from {fid.low:g} to {fid.high:g}",
                                f"strategy.options.{key}", opts, key)

    # -- derived objects -------------------------------------------------------------------
    def make_space(self) -> SearchSpace:
        return self.space.build()

    def fidelities(self) -> Optional[Fidelities]:
        """The budgets at which the objective's result can differ: the table's 12 and 200 epochs,
        a train objective's every integer epoch from min_epochs to epochs, a function objective's
        ``fidelity`` (None when it declares none)."""
        from ..strategies.fidelity import Fidelities
        o = self.objective
        if o.type == "table":
            return Fidelities.of(12.0, 200.0, (12.0, 200.0))
        if o.type == "train":
            return Fidelities.of(o.min_epochs, o.epochs, integer=True)
        return o.fidelity.fidelities() if o.fidelity is not None else None

    def strategy_options(self) -> Dict[str, Any]:
        """The strategy's options, with budgets filled in from the objective for multi-fidelity."""
        from ..strategies.registry import DECLARED
        cls = DECLARED[self.strategy.name]
        opts = dict(self.strategy.options)
        fid = self.fidelities()
        if getattr(cls, "multi_fidelity", False) and fid is not None:
            if "min_budget" in cls.options:
                opts.setdefault("min_budget", type(cls.options["min_budget"])(fid.low))
            if "max_budget" in cls.options:
                opts.setdefault("max_budget", type(cls.options["max_budget"])(fid.high))
        return opts

    def objective_terms(self) -> Tuple[List[Objective], List[Constraint]]:
        """The objectives and constraints as :mod:`nasrun.multiobjective` values."""
        from ..multiobjective import Constraint, Objective
        o = self.objective
        objs = [Objective(t.metric, t.mode, t.weight) for t in o.objectives] or [Objective(o.metric, o.mode)]
        return objs, [Constraint(c.metric, c.min, c.max) for c in o.constraints]

    def make_strategy(self, dedupe: Optional[bool] = None) -> Any:
        """The spec's strategy, wrapped to skip duplicates where :meth:`dedupe` says (``dedupe``
        overrides that: False gives the bare strategy, e.g. to read its rungs)."""
        from ..strategies.registry import DECLARED, make_strategy
        extra: Dict[str, Any] = {}
        objs, cons = self.objective_terms()
        if len(objs) > 1 or cons:
            extra = {"objectives": objs, "constraints": cons, "scalarize": self.objective.scalarize}
        if DECLARED[self.strategy.name].multi_fidelity:
            extra["fidelities"] = self.fidelities()
        strategy = make_strategy(self.strategy.name, self.make_space(), seed=self.experiment.seed,
                                 metric=self.objective.metric, mode=self.objective.mode,
                                 **extra, **self.strategy_options())
        if not (self.dedupe() if dedupe is None else dedupe):
            return strategy
        from ..space.builtin import canonical_key
        from ..strategies.dedupe import Dedupe
        return Dedupe(strategy, canonical_key(self.space.builtin))

    def dedupe(self) -> bool:
        """Whether the strategy is wrapped to skip duplicates: ``strategy.dedupe``, by default
        where evaluations are deterministic."""
        if self.strategy.dedupe is not None:
            return self.strategy.dedupe
        return self.objective.type == "table" or self.objective.deterministic


def build_spec(data: Any, file: Optional[str] = None) -> Spec:
    ctx = Ctx(file)
    if not isinstance(data, Mapping):
        raise ctx.error(f"expected a mapping with sections {', '.join(SECTIONS)}, got {describe(data)}", "")
    return build(Spec, data, "", ctx)
