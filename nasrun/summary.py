"""One-screen summary of a validated spec (``nasrun validate``)."""
from __future__ import annotations

import math
from typing import List

from .spec import Spec


def spec_summary(spec: Spec, file: str) -> str:
    space = spec.make_space()
    size = space.size()
    o, b, r = spec.objective, spec.budget, spec.resources
    if o.type == "train":
        objective = (f"train on {o.dataset.name}{' (' + o.dataset.path + ')' if o.dataset.path else ''}, "
                     f"{o.epochs} epochs, batch {o.batch_size}, {o.optimizer.name} lr {o.optimizer.lr:g}")
    elif o.type == "table":
        objective = f"table lookup ({o.benchmark}{', ' + o.path if o.path else ''})"
    else:
        objective = f"function {o.function}"
    ends = [f"{b.max_trials} trials" if b.max_trials else None,
            f"{b.max_seconds:g} s" if b.max_seconds else None,
            f"{o.metric} reaches {b.target:g}" if b.target is not None else None]
    opts = spec.strategy_options()
    lines = [
        f"{file}: valid",
        f"  experiment  {spec.experiment.name} (seed {spec.experiment.seed}) -> {spec.experiment.directory}",
        f"  space       {len(space)} parameters"
        f"{' (builtin ' + spec.space.builtin + ')' if spec.space.builtin else ''}, "
        f"{'continuous' if math.isinf(size) else f'{size:,.0f} configurations'}",
        f"  strategy    {spec.strategy.name}"
        + (" " + ", ".join(f"{k}={v}" for k, v in opts.items()) if opts else "")
        + _stopper(spec),
        *_rungs(spec),
        *(["  duplicates  never evaluated twice at one budget (strategy.dedupe"
           + (")" if spec.strategy.dedupe else ": the objective is deterministic)")]
          if spec.dedupe() else []),
        f"  objective   {_objectives(o)}: {objective}",
        f"  budget      until {' or '.join(e for e in ends if e)}",
        f"  resources   {r.ranks_per_trial} rank(s) per trial, {r.gpus_per_group} GPU(s) per group, "
        f"device {r.device}, backend {r.backend}"
        + (f", trial time limit {r.trial_time_limit:g} s" if r.trial_time_limit else ""),
    ]
    return "\n".join(lines)


def _rungs(spec: Spec) -> List[str]:
    """A multi-fidelity strategy's rungs (and Hyperband's brackets: trials x budget per rung)."""
    from .strategies import STRATEGIES
    if not STRATEGIES[spec.strategy.name].multi_fidelity:
        return []
    strategy = spec.make_strategy(dedupe=False)
    from .strategies.fidelity import promotion_steps
    fid = spec.fidelities()
    o = strategy.opts
    keep = [f"1/{float(o['eta']) ** m:g}" for m in
            promotion_steps(o["min_budget"], o["max_budget"], o["eta"], fid)]
    kept = (keep[0] if len(set(keep)) == 1 else ", ".join(keep)) if keep else "-"
    lines = [f"  rungs       {', '.join(f'{b:g}' for b in strategy.budgets)} (the best {kept} go up "
             f"a rung; the objective's fidelities: {fid.describe() if fid else 'any'})"]
    schedule = getattr(strategy, "schedule", None)
    if schedule is not None:
        lines.append("  brackets    " + "; ".join(
            " -> ".join(f"{n} x {b:g}" for n, b in bracket) for bracket in schedule()))
    return lines


def _objectives(o) -> str:
    """``maximize valid_accuracy``, or every objective and constraint of a multi-objective spec."""
    if len(o.objectives) < 2:
        text = f"{o.mode}imize {o.metric}"
    else:
        text = ", ".join(f"{t.mode}imize {t.metric}" for t in o.objectives)
        text += " (weighted sum)" if o.scalarize else " (Pareto)"
    for c in o.constraints:
        bounds = [f">= {float(c.min):g}" if c.min is not None else "",
                  f"<= {float(c.max):g}" if c.max is not None else ""]
        text += f", {c.metric} {' and '.join(b for b in bounds if b)}"
    return text


def _stopper(spec) -> str:
    """", stopper NAME (option=value...)" with every option's value (defaults too), or ""."""
    choice = spec.strategy.stopper_choice
    if choice is None:
        return ""
    from .stoppers import STOPPERS
    opts = {**STOPPERS[choice.name].options, **choice.options}
    return f"; stopper {choice.name} ({', '.join(f'{k}={v}' for k, v in opts.items())})"
