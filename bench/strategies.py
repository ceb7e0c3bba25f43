"""Compare every strategy with random search on NAS-Bench-201 (CIFAR-10), simulated, same run.

    python bench/strategies.py [--seeds N] [--workers W] [--budget-seconds T] [--json PATH]

Per method: mean/std over seeds of the valid accuracy of the incumbent at the end of the
simulated time budget and of its test accuracy, the finished evaluations (any budget) needed
to first reach random search's mean final valid accuracy, and rank 0's ask+tell microseconds
per trial (real time on this machine).
"""
from __future__ import annotations

import argparse
import json
import math
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from nasrun.simulate import render_table, simulate_spec  # noqa: E402

METHODS = ["random", "evolution", "rl", "hyperband", "asha", "bohb"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--budget-seconds", type=float, default=100000.0)
    ap.add_argument("--json", type=pathlib.Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    runs, wall = {}, {}
    for m in METHODS:
        t0 = time.perf_counter()
        runs[m] = simulate_spec(m, workers=args.workers, budget_seconds=args.budget_seconds,
                                seeds=range(args.seeds))
        wall[m] = time.perf_counter() - t0
    target = statistics.fmean(r.final[0] for r in runs["random"])
    rows = []
    for m, rs in runs.items():
        valid, test = [r.final[0] for r in rs], [r.final[1] for r in rs]
        reach = [r.trials_to_reach(target) for r in rs]
        hit = [n for n in reach if math.isfinite(n)]
        rows.append({"method": m, "valid_mean": statistics.fmean(valid),
                     "valid_std": statistics.stdev(valid) if len(rs) > 1 else 0.0,
                     "test_mean": statistics.fmean(test),
                     "test_std": statistics.stdev(test) if len(rs) > 1 else 0.0,
                     "evals_to_random_final": statistics.median(hit) if hit else None,
                     "reached": f"{len(hit)}/{len(rs)}",
                     "trials": statistics.fmean(len(r.trials) for r in rs),
                     "utilization": statistics.fmean(r.utilization for r in rs),
                     "ask_tell_us": statistics.fmean(r.overhead_us for r in rs),
                     "wall_seconds": wall[m]})
    headers = ["method", "valid (mean ± std)", "test (mean ± std)",
               "evals to random's final (median, reached)", "trials", "utilization",
               "ask+tell µs/trial"]
    cells = [[r["method"], f"{r['valid_mean']:.2f} ± {r['valid_std']:.2f}",
              f"{r['test_mean']:.2f} ± {r['test_std']:.2f}",
              f"{r['evals_to_random_final'] if r['evals_to_random_final'] is not None else '-'}"
              f" ({r['reached']})", f"{r['trials']:.0f}", f"{100 * r['utilization']:.0f}%",
              f"{r['ask_tell_us']:.0f}"] for r in rows]
    title = (f"NAS-Bench-201 CIFAR-10, {args.workers} workers, {args.budget_seconds:g} simulated s,"
             f" {args.seeds} seeds (random's mean final valid {target:.2f})")
    print(render_table(title, headers, cells))
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "random_final_valid": target, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
