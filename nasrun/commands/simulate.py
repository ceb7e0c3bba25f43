"""``nasrun simulate SPEC``: run the spec's strategy against the NAS-Bench-201 table with N
simulated parallel workers, to compare strategies before spending allocation hours."""
from __future__ import annotations

import json
from typing import Optional, Tuple

import click

from .base import user_errors
from ..errors import UserInputError


@click.command("simulate")
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))
@click.option("--workers", default=8, show_default=True, type=click.IntRange(1, 100000),
              help="Simulated parallel worker groups.")
@click.option("--budget-seconds", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Simulated wall-clock budget (default: the spec's budget.max_seconds).")
@click.option("--max-trials", type=click.IntRange(min=1), default=None,
              help="Trial budget (default: the spec's budget.max_trials unless a time budget is given).")
@click.option("--seeds", default=1, show_default=True, type=click.IntRange(1, 1000),
              help="Independent runs (seeds experiment.seed, +1, ...).")
@click.option("--compare", "compare", multiple=True, metavar="STRATEGY",
              help="Also run this strategy (default options) on the same seeds; repeatable, e.g. --compare random.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Write every run's best-so-far trajectory and utilization to this JSON file.")
@user_errors
def simulate(spec_path: str, workers: int, budget_seconds: Optional[float], max_trials: Optional[int],
             seeds: int, compare: Tuple[str, ...], json_out: Optional[str]) -> None:
    """Simulate SPEC's search on the NAS-Bench-201 CIFAR-10 table (space: builtin nb201; the
    table path from objective.path when the objective is a table, else ../shared/benchmarks/nb201
    or $NASRUN_NB201): simulated training times, simulated parallel workers, real accuracies."""
    from ..simulate import format_table, simulate_spec
    from ..spec import load_spec
    from ..strategies import STRATEGIES
    spec = load_spec(spec_path)
    if spec.space.builtin != "nb201" or spec.space.params:
        raise UserInputError(f"{spec_path}: space: simulate needs 'space: {{builtin: nb201}}' with no "
                             "extra params (the table covers that space only)")
    for name in compare:
        if name not in STRATEGIES:
            raise UserInputError(f"--compare: unknown strategy {name!r}; expected one of: {', '.join(STRATEGIES)}")
    if budget_seconds is None:
        budget_seconds = spec.budget.max_seconds
    if max_trials is None and budget_seconds is None:
        max_trials = spec.budget.max_trials
    path = spec.objective.path if spec.objective.type == "table" else None
    seed_list = [spec.experiment.seed + i for i in range(seeds)]
    space = spec.make_space()
    results = simulate_spec(spec.strategy.name, spec.strategy.options, space, path, workers, budget_seconds,
                            max_trials, seed_list, spec.objective.metric, spec.objective.mode)
    for name in compare:
        results += simulate_spec(name, {}, space, path, workers, budget_seconds, max_trials, seed_list,
                                 spec.objective.metric, spec.objective.mode)
    ends = " and ".join(x for x in (f"{budget_seconds:g} simulated s" if budget_seconds else "",
                                    f"{max_trials} trials" if max_trials else "") if x)
    click.echo(format_table(results, f"NAS-Bench-201 CIFAR-10, {workers} workers, {ends}, {seeds} seed(s)"))
    if json_out:
        with open(json_out, "w", encoding="utf-8") as f:
            json.dump([_plain(r) for r in results], f)
        click.echo(f"wrote {json_out}")


def _plain(r):
    return {"strategy": r.strategy, "seed": r.seed, "workers": r.workers, "trials": len(r.trials),
            "makespan": r.makespan, "final": list(r.final), "utilization": r.utilization,
            "overhead_us": r.overhead_us, "trajectory": [list(p) for p in r.trajectory]}
