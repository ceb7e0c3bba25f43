"""``nasrun simulate SPEC``: the spec's search through the real driver and store, with N simulated
worker groups on a virtual clock, to compare strategies before spending allocation hours."""
from __future__ import annotations

import json
import math
import statistics
from typing import Any, Dict, List, Optional, Tuple

import click

from ..errors import UserInputError
from .base import user_errors


def parse_compare(text: str) -> Tuple[str, Dict[str, Any]]:
    """``name`` or ``name:key=value,key=value`` (values parsed as YAML scalars)."""
    import yaml
    name, _, rest = text.partition(":")
    opts: Dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise UserInputError(f"--compare {text}: expected NAME or NAME:key=value,key=value")
        try:
            opts[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise UserInputError(f"--compare {text}: cannot read the value of {key!r}") from None
    return name.strip(), opts


def _row(name: str, rs: List[Any], target: Optional[float], sign: float) -> Dict[str, Any]:
    valid = [r.final[0] for r in rs]
    test = [r.final[1] for r in rs]
    reach = [r.trials_to_reach(target, sign) for r in rs] if target is not None else []
    hit = [n for n in reach if math.isfinite(n)]
    fin = [v for v in valid if not math.isnan(v)]
    return {"strategy": name, "seeds": len(rs),
            "valid_mean": statistics.fmean(fin) if fin else math.nan,
            "valid_std": statistics.stdev(fin) if len(fin) > 1 else 0.0,
            "test_mean": _mean(test), "test_std": _std(test),
            "evals_to_random_final": statistics.median(hit) if hit else None,
            "reached": f"{len(hit)}/{len(rs)}" if target is not None else "-",
            "trials": statistics.fmean(len(r.trials) for r in rs),
            "utilization": statistics.fmean(r.utilization for r in rs),
            "rank0_us_per_trial": statistics.fmean(r.overhead_us for r in rs),
            "commits_per_trial": statistics.fmean(r.commits_per_trial for r in rs)}


def _mean(xs):
    xs = [x for x in xs if not math.isnan(x)]
    return statistics.fmean(xs) if xs else math.nan


def _std(xs):
    xs = [x for x in xs if not math.isnan(x)]
    return statistics.stdev(xs) if len(xs) > 1 else 0.0


@click.command("simulate")
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))
@click.option("--workers", "--groups", "groups", default=8, show_default=True,
              type=click.IntRange(1, 100000), help="Simulated parallel worker groups.")
@click.option("--budget-seconds", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Simulated wall-clock budget (default: the spec's budget.max_seconds).")
@click.option("--max-trials", type=click.IntRange(min=1), default=None,
              help="Trial budget (default: the spec's budget.max_trials unless another budget is given).")
@click.option("--max-epochs", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Training-work budget: epochs summed over trials (compares multi-fidelity and "
                   "single-fidelity methods on the same work).")
@click.option("--seeds", default=1, show_default=True, type=click.IntRange(1, 1000),
              help="Independent runs (seeds experiment.seed, +1, ...).")
@click.option("--compare", "compare", multiple=True, metavar="STRATEGY[:KEY=VALUE,...]",
              help="Also run this strategy on the same seeds; repeatable, e.g. --compare random "
                   "--compare evolution:population_size=20.")
@click.option("--store", type=click.Choice(["hdf5", "memory"]), default="hdf5", show_default=True,
              help="The checkpoint of each simulated run: the real HDF5 store in a temporary "
                   "directory, or in memory.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Write the table and every run's best-so-far trajectory to this JSON file.")
@user_errors
def simulate(spec_path: str, groups: int, budget_seconds: Optional[float], max_trials: Optional[int],
             max_epochs: Optional[float], seeds: int, compare: Tuple[str, ...], store: str,
             json_out: Optional[str]) -> None:
    """Simulate SPEC's search with simulated parallel worker groups: the real driver and
    checkpoint, trial durations from the objective (the NAS-Bench-201 table's training times;
    for a function objective the `train_seconds` it returns or objective.duration), rank 0's
    own CPU time charged to the virtual clock. Prints per strategy the best valid accuracy and
    the test accuracy of the pick, evaluations to reach random search's final quality,
    utilization, rank-0 CPU and commits per trial."""
    from ..simulate import render_table, simulate_run, with_changes
    from ..spec import load_spec
    from ..strategies.registry import DECLARED
    spec = load_spec(spec_path)
    runs: List[Tuple[str, str, Dict[str, Any]]] = [(spec.strategy.name, spec.strategy.name,
                                                    dict(spec.strategy.options))]
    for text in compare:
        name, opts = parse_compare(text)
        if name not in DECLARED:
            raise UserInputError(f"--compare: unknown strategy {name!r}; expected one of: "
                                 f"{', '.join(DECLARED)}")
        runs.append((text, name, opts))
    if "random" not in [n for _, n, _ in runs]:
        runs.append(("random (reference)", "random", {}))
    if budget_seconds is None and max_trials is None and max_epochs is None:
        budget_seconds, max_epochs = spec.budget.max_seconds, spec.budget.max_epochs
        if budget_seconds is None and max_epochs is None:
            max_trials = spec.budget.max_trials
    specs = []  # every run's spec is checked before the first one starts
    for label, name, opts in runs:
        for i in range(seeds):
            try:
                s, _ = with_changes(spec, strategy=name, options=opts, seed=spec.experiment.seed + i)
            except UserInputError as e:
                raise UserInputError(f"--compare {label}: {e}") from None
            specs.append((label, s))
    results: Dict[str, List[Any]] = {}
    for label, s in specs:
        results.setdefault(label, []).append(
            simulate_run(s, groups, budget_seconds, max_trials, max_epochs, store, name=label))
    sign = 1.0 if spec.objective.mode == "max" else -1.0
    ref = next(rs for label, rs in results.items() if label.startswith("random"))
    fin = [r.final[0] for r in ref if not math.isnan(r.final[0])]
    target = statistics.fmean(fin) if fin else None
    rows = [_row(label, rs, target, sign) for label, rs in results.items()]
    ends = ", ".join(x for x in (f"{budget_seconds:g} simulated s" if budget_seconds else "",
                                 f"{max_trials} trials" if max_trials else "",
                                 f"{max_epochs:g} epochs" if max_epochs else "") if x)
    title = f"{_title(spec)}, {groups} groups, {ends}, {seeds} seed(s)"
    headers = ["strategy", f"best {spec.objective.metric}", "its test", "evals to random's final",
               "trials", "utilization", "rank-0 µs/trial", "commits/trial"]
    cells = [[r["strategy"], f"{r['valid_mean']:.4g} ± {r['valid_std']:.2g}",
              f"{r['test_mean']:.4g} ± {r['test_std']:.2g}",
              f"{r['evals_to_random_final'] if r['evals_to_random_final'] is not None else '-'} "
              f"({r['reached']})", f"{r['trials']:.0f}", f"{100 * r['utilization']:.1f}%",
              f"{r['rank0_us_per_trial']:.0f}", f"{r['commits_per_trial']:.3f}"] for r in rows]
    click.echo(render_table(title, headers, cells))
    if json_out:
        with open(json_out, "w", encoding="utf-8") as f:
            json.dump({"title": title, "random_final": target, "rows": rows,
                       "runs": {k: [r.summary() for r in rs] for k, rs in results.items()}},
                      f, default=float)
        click.echo(f"wrote {json_out}")


def _title(spec) -> str:
    if spec.objective.type == "table":
        from ..objectives import load_nb201
        return f"NAS-Bench-201 {load_nb201(spec.objective.path).name}"
    return f"{spec.experiment.name} ({spec.objective.type} objective)"
