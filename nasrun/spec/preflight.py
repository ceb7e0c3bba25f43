"""What can be checked before a job starts, beyond the spec's own structure (``nasrun validate``,
and ``run``/``resume`` on rank 0 before any worker starts): the function objective imports and is
callable, the data set is there and readable (headers and labels only, no downloads), a train
objective has an architecture to train, the trainer's searched hyperparameters and the
strategy's numeric options lie in working ranges, time limits are not absurd.

Every problem is a :class:`~nasrun.errors.SpecError` naming the file, the key path and what was
expected (exit 2). ``preflight`` imports the objective's module: that runs its code.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, Optional, Tuple

from ..errors import SpecError, UserInputError
from .fields import one_line, shorten

YEAR = 365 * 24 * 3600.0
#: seconds options that a run cannot sensibly exceed (a timer of years is a typo)
SECONDS_MAX = {"resources.trial_time_limit": YEAR, "resources.orphan_timeout": YEAR,
               "resources.shutdown_grace": YEAR, "checkpoint.every_seconds": YEAR}

# strategy option -> (low, high, low inclusive, high inclusive); options not listed: any value
# the strategy's own constructor accepts
STRATEGY_BOUNDS = {
    "min_budget": (0.0, 1e6, False, True),
    "max_budget": (0.0, 1e6, False, True),
    "eta": (1.0, 1000.0, False, True),
    "max_brackets": (0, 1_000_000, True, True),  # 0: no limit (one per idle group)
    "random_fraction": (0.0, 1.0, True, True),
    "top_n_percent": (0.0, 100.0, False, True),
    "min_points_in_model": (0, 1_000_000, True, True),
    "num_samples": (1, 100_000, True, True),
    "bandwidth_factor": (0.0, 1000.0, False, True),
    "min_bandwidth": (0.0, 1000.0, False, True),
    "population_size": (1, 1_000_000, True, True),
    "sample_size": (1, 1_000_000, True, True),
    "replicas": (1, 1024, True, True),
    "samples_per_replica": (1, 100_000, True, True),
    "bins": (2, 1024, True, True),
    "hidden_size": (1, 4096, True, True),
    "lr": (0.0, 10.0, False, True),
    "baseline_decay": (0.0, 1.0, True, True),
    "entropy_weight": (0.0, 100.0, True, True),
    "max_staleness": (0, 1_000_000, True, True),
    "temperature": (0.0, 1000.0, False, True),
    "tanh_constant": (0.0, 100.0, True, True),  # 0: no logit clipping
    # gp, smac, tpe, local_search: costs per ask grow with these (the GP's fit cubically)
    "n_initial": (1, 1_000_000, True, True),
    "window": (4, 100_000, True, True),
    "fit_window": (4, 4096, True, True),
    "refit_every": (1, 1_000_000, True, True),
    "n_candidates": (1, 100_000, True, True),
    "local_starts": (0, 1000, True, True),
    "n_trees": (1, 1000, True, True),
    "xi": (0.0, 10.0, True, True),
    "numeric_steps": (1, 1000, True, True),
}

# hyperparameters the train objective reads from a configuration: (kind, low, high) or choices
TRAIN_PARAMS = {
    "lr": ("float", 0.0, 10.0, False),
    "momentum": ("float", 0.0, 1.0, True),
    "weight_decay": ("float", 0.0, 1.0, True),
    "batch_size": ("int", 1, 1 << 20, True),
}
OPTIMIZERS = ("sgd", "adam", "adamw")
# objective.options the train objective reads (positive integers, at most)
TRAIN_OPTIONS = {"stem_width": 4096, "nb201_channels": 4096, "nb201_cells": 64}


def _interval(lo: float, hi: float, lo_in: bool, hi_in: bool) -> str:
    return f"{'[' if lo_in else '('}{lo:g}, {hi:g}{']' if hi_in else ')'}"


def _inside(v: float, lo: float, hi: float, lo_in: bool, hi_in: bool) -> bool:
    if isinstance(v, float) and not math.isfinite(v):
        return False
    return bool(v >= lo if lo_in else v > lo) and bool(v <= hi if hi_in else v < hi)


def preflight(spec: Any, file: Optional[str] = None, output_dir: bool = True,
              build_strategy: bool = False) -> None:
    """Raise a SpecError for the first problem of ``spec`` found beyond its structure.

    ``output_dir=False`` (resume: the directory is the one given, not the stored spec's) skips
    the check that experiment.output_dir can be created. ``build_strategy=True`` (a run) also
    builds a strategy whose implementation needs torch, so that its constructor's checks run
    (the spec schema builds the others; ``nasrun validate`` imports no torch)."""
    def error(message: str, path: str) -> SpecError:
        return SpecError(message, path=path, file=file)

    _check_seconds(spec, error)
    if build_strategy:
        _check_strategy(spec, error)
    if output_dir:
        _check_output_dir(spec.experiment.directory, error)
    o = spec.objective
    if o.type == "function":
        from ..objectives import import_function
        try:
            import_function(o.function, o.python_path)
        except UserInputError as e:
            text = str(e).replace("objective.function: ", "", 1)
            raise error(f"{one_line(text)} (expected module:function, importable with "
                        "objective.python_path, naming a callable)", "objective.function") from None
    elif o.type == "train":
        _check_train(spec, error)


def _check_strategy(spec: Any, error: Callable[[str, str], SpecError]) -> None:
    from ..strategies.registry import DECLARED
    if DECLARED[spec.strategy.name].requires:
        try:
            spec.make_strategy()
        except (ValueError, TypeError) as e:
            raise error(str(e), "strategy.options") from None


def _check_output_dir(directory: str, error: Callable[[str, str], SpecError]) -> None:
    """The experiment directory can be created (or is a writable directory); nothing is written."""
    import os
    where = "experiment.output_dir"
    path = os.path.abspath(directory)
    if len(os.fsencode(path)) >= 4096 or any(len(os.fsencode(c)) > 255 for c in path.split(os.sep)):
        raise error(f"{shorten(directory)} is too long (a path under 4,096 bytes, each name at "
                    "most 255)", where)
    probe = path
    while not os.path.lexists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        what = "is" if probe == path else f"is inside {probe!r}, which is"
        raise error(f"{shorten(directory)} {what} not a directory (expected a directory nasrun "
                    "can create or write to)", where)
    if not os.access(probe, os.W_OK | os.X_OK):
        what = "is" if probe == path else f"would be created in {probe!r}, which is"
        raise error(f"{shorten(directory)} {what} not writable (expected a directory nasrun "
                    "can create or write to)", where)


def _check_seconds(spec: Any, error: Callable[[str, str], SpecError]) -> None:
    for path, top in SECONDS_MAX.items():
        section, key = path.split(".")
        v = getattr(getattr(spec, section), key)
        if v is not None and not v <= top:
            raise error(f"expected at most {top:g} seconds (a year), got {shorten(v)}", path)


def strategy_option_problem(name: str, value: Any) -> Optional[str]:
    """What is wrong with a numeric strategy option's value (checked by the spec schema, before
    the strategy is built: a huge network or population would exhaust memory), or None."""
    b = STRATEGY_BOUNDS.get(name)
    if b is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if _inside(value, *b):
        return None
    return f"expected a value in {_interval(*b)}, got {shorten(value)}"


def _param_domain(spec: Any) -> Tuple[str, Any]:
    d: Dict[str, Any] = {"type": "categorical", "choices": spec} if isinstance(spec, list) else dict(spec)
    if d["type"] == "categorical":
        return "categorical", list(d["choices"])
    return str(d["type"]), (d["low"], d["high"])


def _check_train(spec: Any, error: Callable[[str, str], SpecError]) -> None:
    from ..train.datasets import check_dataset
    space = spec.space
    if space.builtin is None:
        raise error("a train objective trains an architecture: set 'builtin: chain' or "
                    "'builtin: nb201' (or use objective.type function with your own model)",
                    "space.builtin")
    o = spec.objective
    for name, top in TRAIN_OPTIONS.items():
        if name in o.options:
            v = o.options[name]
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= top:
                raise error(f"expected an integer in [1, {top}], got {shorten(v)}",
                            f"objective.options.{name}")
    for name, p in space.params.items():
        path = f"space.params.{name}"
        kind, dom = _param_domain(p)
        if name == "optimizer":
            bad = [c for c in dom if c not in OPTIMIZERS] if kind == "categorical" else [kind]
            if bad:
                raise error(f"the train objective's optimizer is one of {', '.join(OPTIMIZERS)}, "
                            f"got {shorten(bad[0])}", path)
        elif name in TRAIN_PARAMS:
            want, lo, hi, lo_in = TRAIN_PARAMS[name]
            values = dom if kind == "categorical" else list(dom)
            for v in values:
                ok = not isinstance(v, bool) and isinstance(v, (int, float)) and \
                    (want == "float" or float(v).is_integer()) and _inside(v, lo, hi, lo_in, True)
                if not ok:
                    raise error(f"the train objective reads {name} as "
                                f"{'an integer' if want == 'int' else 'a number'} in "
                                f"{_interval(lo, hi, lo_in, True)}, got {shorten(v)}", path)
    ds = o.dataset
    try:
        n, shape = check_dataset(ds)
    except UserInputError as e:
        raise error(one_line(str(e)), "objective.dataset.path" if ds.path else "objective.dataset") \
            from None
    m = min(n, ds.limit) if ds.limit is not None else n
    n_valid = int(round(ds.valid_fraction * m))
    if n_valid < 1 or m - n_valid < 1:
        raise error(f"{m} samples cannot be split into train and validation sets with "
                    f"valid_fraction {ds.valid_fraction:g}: expected more samples",
                    "objective.dataset.limit" if ds.limit is not None and ds.limit < n
                    else "objective.dataset")
    if len(shape) != 3 and (space.builtin == "nb201" or space.options.get("kind", "cnn") == "cnn"):
        net = "the nb201 network" if space.builtin == "nb201" else "a cnn chain"
        raise error(f"{net} needs images (N, C, H, W) or (N, H, W) but the data set's inputs have "
                    f"shape {shape}; use 'kind: mlp' for vectors", "objective.dataset")
