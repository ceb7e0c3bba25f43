"""Utilization at scale: simulated workers with NAS-Bench-201 training times, every strategy.

    python bench/utilization.py [--workers 16,256,1024] [--budget-seconds 8000] [--json PATH]

Per strategy and worker count W, the simulator (``nasrun.simulate.simulate``: every idle worker
asks at once, results are told when their table training time has elapsed) runs an allocation
of ``budget-seconds`` simulated seconds (about 4 full 200-epoch trials per worker; at most 20 W
trials), and reports busy worker time / (W x allocation; trials still running at the end count
as busy: the allocation's steady state, not the drain of a finished search)
and rank 0's real ask+tell compute per trial on this machine. Rank 0 is the bottleneck once it
cannot hand out trials as fast as they finish: from W* = mean trial duration / rank-0 time per
trial workers on (the column "rank-0 load" is rank-0 time x W / mean duration; above 100% the
simulated utilization would not be reached for real). Hyperband is the synchronous variant
(``max_brackets: 1``: a rung waits for its slowest trial); ASHA is its asynchronous counterpart.
The RL controller gets ``replicas x samples_per_replica >= W`` (it answers WAIT otherwise).
Target: >= 98% utilization at 1,024 workers.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

from _table import table, verdict, write_json

from nasrun.simulate import simulate_spec  # noqa: E402

METHODS = ["random", "evolution", "rl", "hyperband", "asha", "bohb"]


def options_for(method: str, workers: int) -> dict:
    if method == "rl":
        k = max(4, int(math.ceil(math.sqrt(workers))))
        return {"replicas": k, "samples_per_replica": int(math.ceil(workers / k))}
    if method == "hyperband":
        return {"max_brackets": 1}
    if method == "evolution":
        return {"population_size": max(20, workers), "sample_size": 5}
    return {}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", default="16,256,1024")
    ap.add_argument("--budget-seconds", type=float, default=8000.0)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    rows = []
    for w in [int(x) for x in args.workers.split(",")]:
        for m in args.methods.split(","):
            opts = options_for(m, w)
            t0 = time.perf_counter()
            r = simulate_spec(m, opts, workers=w, budget_seconds=args.budget_seconds,
                              max_trials=20 * w)[0]
            wall = time.perf_counter() - t0
            durations = [t.end - t.start for t in r.trials]
            mean_d = statistics.fmean(durations) if durations else math.nan
            load = r.overhead_us * 1e-6 * w / mean_d if durations else math.nan
            rows.append({"workers": w, "method": m, "options": opts, "trials": len(r.trials),
                         "utilization": r.utilization, "rank0_us_per_trial": r.overhead_us,
                         "mean_trial_s": mean_d, "rank0_load": load,
                         "bottleneck_from_workers": (mean_d / (r.overhead_us * 1e-6)
                                                     if r.overhead_us > 0 else math.inf),
                         "wall_s": wall})
            print(f"  {m} W={w}: {len(r.trials)} trials, {100 * r.utilization:.2f}% in {wall:.1f}s",
                  file=sys.stderr, flush=True)
    cells = [[r["workers"], r["method"], r["trials"], f"{100 * r['utilization']:.2f}%",
              f"{r['rank0_us_per_trial']:.0f}", f"{r['mean_trial_s']:.0f}",
              f"{100 * r['rank0_load']:.3f}%", f"{r['bottleneck_from_workers']:,.0f}"] for r in rows]
    print(table("utilization, simulated NAS-Bench-201 (CIFAR-10) training times; rank-0 time is real",
                ["workers", "strategy", "trials", "busy/allocated", "rank-0 µs/trial",
                 "mean trial s", "rank-0 load", "rank 0 saturates at W ="], cells))
    big = max(r["workers"] for r in rows)
    print("target >= 98% at the largest scale: " + "; ".join(
        f"{r['method']} {verdict(r['utilization'] >= 0.98)}" for r in rows if r["workers"] == big))
    write_json(args.json, {"args": vars(args), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
