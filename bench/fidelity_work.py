"""Multi-fidelity strategies against random search on the same training work (epochs), simulated.

    python bench/fidelity_work.py [--seeds 30] [--groups 1,8] [--evaluations 50,150,500]
                                  [--methods asha,hyperband,bohb] [--option asha.eta=4] [--json PATH]

Every run is ``nasrun.simulate.simulate_run`` on the shared NAS-Bench-201 CIFAR-10 table (the
real driver, simulated groups, the table's training times, no rank-0 CPU charged so runs are
deterministic). The budget is training work, not trials: ``E`` evaluations means the epochs
random search spends on ``E`` full (200-epoch) evaluations. The work of a run is counted as
epochs trained: a promotion continues its lower-rung trial and trains the extra epochs only, and
with several groups the trials in flight count the epochs they have done
(:meth:`~nasrun.simulate.SimResult.within_epochs`). Each run is cut when that work reaches the
budget; the pick is the trial ``nasrun`` would name best among those finished by then (the
highest budget first, then the valid accuracy), so a multi-fidelity search is not credited with
a 12-epoch number it never confirmed. One run per method, group count and seed serves every
budget (it runs a little past the largest).

Reported per group count, budget and method: the pick's valid accuracy and its test accuracy
(mean ± std over seeds), trials finished, utilization until the cut, the difference of the mean
valid accuracy with random search's, and the one-sided Mann-Whitney p that the method's picks are
better than random search's. Target (issue 14): asha and hyperband at least as good as random
search (mean valid accuracy) at every budget.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence

from _table import table, verdict, write_json

from nasrun.simulate import nb201_spec, simulate_run  # noqa: E402

FULL_EPOCHS = 200.0  # one full NAS-Bench-201 evaluation
METHODS = ("asha", "hyperband", "bohb")


def _stats(xs: Sequence[float]) -> tuple:
    return statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0


def rows(seeds: Sequence[int] = range(30), groups: Sequence[int] = (1, 8),
         evaluations: Sequence[int] = (50, 150, 500), methods: Sequence[str] = METHODS,
         options: Optional[Mapping[str, Mapping[str, Any]]] = None, objective_path: Any = None,
         progress: bool = False) -> List[Dict[str, Any]]:
    """One row per (groups, evaluations, method), random search first in each group of rows
    (see the module docstring). ``options``: strategy options per method (default: none)."""
    from scipy.stats import mannwhitneyu
    options = options or {}
    budgets = [e * FULL_EPOCHS for e in evaluations]
    # past the largest budget, so that the cut is not in the drain at the end of the run
    run_epochs = 1.1 * max(budgets) + 2 * FULL_EPOCHS * max(groups)
    out: List[Dict[str, Any]] = []
    for g in groups:
        cuts: Dict[str, List[List[Dict[str, Any]]]] = {}
        for m in ["random", *methods]:
            t0 = time.perf_counter()
            cuts[m] = []
            for seed in seeds:
                spec = nb201_spec(m, dict(options.get(m, {})), seed, objective_path)
                r = simulate_run(spec, g, max_epochs=run_epochs, store="memory", charge_cpu=False)
                cuts[m].append([r.within_epochs(b) for b in budgets])
            if progress:
                print(f"  {m} G={g}: {len(seeds)} seeds in {time.perf_counter() - t0:.1f}s",
                      file=sys.stderr, flush=True)
        for i, (e, b) in enumerate(zip(evaluations, budgets)):
            ref = [c[i]["metric"] for c in cuts["random"]]
            for m in ["random", *methods]:
                valid = [c[i]["metric"] for c in cuts[m]]
                test = [c[i]["test"] for c in cuts[m]]
                p = None if m == "random" else float(
                    mannwhitneyu(valid, ref, alternative="greater").pvalue)
                vm, vs = _stats(valid)
                tm, ts = _stats(test)
                out.append({"groups": g, "evaluations": e, "epochs": b, "method": m,
                            "options": dict(options.get(m, {})), "seeds": len(valid),
                            "valid_mean": vm, "valid_std": vs, "test_mean": tm, "test_std": ts,
                            "delta_valid": vm - statistics.fmean(ref), "p_better": p,
                            "trials": statistics.fmean(c[i]["trials"] for c in cuts[m]),
                            "utilization": statistics.fmean(c[i]["utilization"] for c in cuts[m])})
    return out


def render(rs: Sequence[Mapping[str, Any]], seeds: int) -> str:
    cells = [[r["groups"], f"{r['evaluations']} ({r['epochs']:,.0f})", r["method"],
              f"{r['valid_mean']:.2f} ± {r['valid_std']:.2f}", f"{r['test_mean']:.2f} ± {r['test_std']:.2f}",
              "" if r["method"] == "random" else f"{r['delta_valid']:+.2f}",
              "" if r["p_better"] is None else f"{r['p_better']:.3f}",
              f"{r['trials']:.0f}", f"{100 * r['utilization']:.1f}%"] for r in rs]
    return table(f"NAS-Bench-201 CIFAR-10 on the same training work, {seeds} seeds: the pick when "
                 "the epochs of E full evaluations are trained",
                 ["groups", "budget E (epochs)", "method", "valid (mean ± std)", "test (mean ± std)",
                  "Δ valid vs random", "p (better)", "trials", "utilization"], cells)


def targets(rs: Sequence[Mapping[str, Any]]) -> str:
    """The issue's target: asha and hyperband at least as good as random at every budget."""
    out = []
    for m in ("asha", "hyperband"):
        mine = [r for r in rs if r["method"] == m]
        if mine:
            worst = min(mine, key=lambda r: r["delta_valid"])
            out.append(f"{m} >= random at every budget: {verdict(worst['delta_valid'] >= 0)} (smallest "
                       f"difference {worst['delta_valid']:+.3f} at {worst['evaluations']} evaluations, "
                       f"{worst['groups']} group(s))")
    return "\n".join(out)


def _options(items: Sequence[str]) -> Dict[str, Dict[str, Any]]:
    import yaml
    out: Dict[str, Dict[str, Any]] = {}
    for item in items:
        key, _, value = item.partition("=")
        method, _, name = key.partition(".")
        if not name or not value:
            raise SystemExit(f"--option {item!r}: expected METHOD.OPTION=VALUE")
        out.setdefault(method, {})[name] = yaml.safe_load(value)
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--groups", default="1,8")
    ap.add_argument("--evaluations", default="50,150,500",
                    help="budgets: the epochs of this many full evaluations")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--option", action="append", default=[], help="METHOD.OPTION=VALUE (repeat)")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    rs = rows(range(args.seeds), [int(x) for x in args.groups.split(",")],
              [int(x) for x in args.evaluations.split(",")], args.methods.split(","),
              _options(args.option), progress=True)
    print(render(rs, args.seeds))
    print(targets(rs))
    write_json(args.json, {"args": vars(args), "rows": rs})
    return 0


if __name__ == "__main__":
    sys.exit(main())
