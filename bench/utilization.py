"""Utilization at scale through the real driver: simulated groups, NAS-Bench-201 training times.

    python bench/utilization.py [--groups 256,1024,4096] [--trials 20000] [--time-scales 1,0.01]
                                [--methods random,evolution,rl,hyperband,asha,bohb] [--store hdf5]

Each run is ``nasrun.simulate.simulate_run``: the driver that runs under MPI (ask, dispatch,
tell, event log, commits, retention, per-trial lines), the real HDF5 store in a temporary
directory, and G simulated groups on a virtual clock whose trials last their NAS-Bench-201
CIFAR-10 training time (times ``time-scale``). The driver's own CPU time is charged to the
virtual clock as it runs, so a rank 0 that cannot keep up leaves groups idle in the result.

Reported per strategy, G and time scale: finished trials; utilization in the steady state (busy /
allocated group time until the last trial is handed out) and over the whole run (including the
drain: groups idle while the last trials of a finite budget finish); rank 0's CPU per trial
(everything the driver did, commits included) and commits per trial; the mean trial time; and
"rank 0 saturates at G =": the number of groups one rank 0 can keep busy, from the measured
per-trial work w (everything but commits) and commit cost c: G* = (1 - c / every_seconds) x mean
trial time / w (commits come at most every ``checkpoint.every_seconds``, whatever the trial rate).
Target (issue 12): >= 98% steady-state utilization at 4,096 groups with NAS-Bench-201 times for
random, evolution and asha.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from typing import Optional

from _table import table, verdict, write_json

from nasrun.simulate import nb201_spec, simulate_run  # noqa: E402

METHODS = ["random", "evolution", "rl", "hyperband", "asha", "bohb"]


def options_for(method: str, groups: int) -> dict:
    """Options a user would set at this scale; every other option is the strategy's default."""
    if method == "rl":  # the controller answers WAIT unless replicas x samples >= groups
        k = max(4, int(math.ceil(math.sqrt(groups))))
        return {"replicas": k, "samples_per_replica": int(math.ceil(groups / k))}
    if method == "evolution":  # a population at least as large as the trials in flight
        return {"population_size": max(100, groups), "sample_size": 25}
    return {}


def run_one(method: str, groups: int, trials: int, scale: float, store: str,
            budget_seconds: Optional[float] = None) -> dict:
    opts = options_for(method, groups)
    # dedupe off: every ask a trial (the table has ~4,900 distinct cells, fewer than the trials)
    spec = nb201_spec(method, opts, seed=0, dedupe=False)
    t0 = time.perf_counter()
    r = simulate_run(spec, groups, budget_seconds=budget_seconds, max_trials=trials, store=store,
                     charge_cpu=True, time_scale=scale)
    wall = time.perf_counter() - t0
    durations = [t.end - t.start for t in r.trials if t.end is not None and t.start is not None]
    mean_d = statistics.fmean(durations) if durations else math.nan
    cpu = r.stats.get("cpu_seconds", {})
    n = max(1, r.stats.get("dispatched", len(r.trials)))
    commits = max(1, r.stats.get("commits", 1))
    per_event = (sum(cpu.values()) - cpu.get("commit", 0.0)) / n  # ask, tell, log, poll... per trial
    commit_s = cpu.get("commit", 0.0) / commits
    every = spec.checkpoint.every_seconds
    # rank 0 is saturated when G / mean trial time x per-trial work + commit work per second = 1
    # (commits come at most every checkpoint.every_seconds, whatever the trial rate)
    sat = (1.0 - commit_s / every) * mean_d / per_event if per_event > 0 else math.inf
    return {"groups": groups, "method": method, "time_scale": scale, "options": opts,
            "trials": len(r.trials), "utilization": r.utilization,
            "utilization_steady": r.utilization_steady, "rank0_us_per_trial": r.overhead_us,
            "rank0_us_per_trial_without_commits": 1e6 * per_event,
            "commit_ms": 1e3 * commit_s, "commits_per_trial": r.commits_per_trial,
            "mean_trial_s": mean_d, "cpu_seconds": cpu, "saturates_at_groups": sat,
            "makespan_s": r.makespan, "wall_s": wall}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", "--workers", dest="groups", default="256,1024,4096")
    ap.add_argument("--trials", type=int, default=20_000, help="finished trials per run")
    ap.add_argument("--budget-seconds", type=float, default=None,
                    help="also stop at this many simulated seconds (default: trials only)")
    ap.add_argument("--time-scales", default="1,0.01", help="multipliers of the table's times")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--store", default="hdf5", choices=["hdf5", "memory"])
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    rows = []
    for scale in [float(x) for x in args.time_scales.split(",")]:
        for g in [int(x) for x in args.groups.split(",")]:
            for m in args.methods.split(","):
                row = run_one(m, g, args.trials, scale, args.store, args.budget_seconds)
                rows.append(row)
                print(f"  {m} G={g} x{scale:g}: {row['trials']} trials, steady "
                      f"{100 * row['utilization_steady']:.2f}%, {row['rank0_us_per_trial']:.0f} µs/trial, "
                      f"{row['wall_s']:.1f}s", file=sys.stderr, flush=True)
    cells = [[f"x{r['time_scale']:g}", r["groups"], r["method"], r["trials"],
              f"{100 * r['utilization_steady']:.2f}%", f"{100 * r['utilization']:.2f}%",
              f"{r['rank0_us_per_trial']:.0f}", f"{r['rank0_us_per_trial_without_commits']:.0f}",
              f"{r['commits_per_trial']:.3f}", f"{r['commit_ms']:.0f}",
              f"{r['mean_trial_s']:.1f}", f"{r['saturates_at_groups']:,.0f}"] for r in rows]
    print(table(f"utilization through the driver, {args.store} store, simulated NAS-Bench-201 "
                "(CIFAR-10) times x scale; rank-0 CPU is real and charged to the clock",
                ["times", "groups", "strategy", "trials", "busy (steady)", "busy (with drain)",
                 "rank-0 µs/trial", "same without commits", "commits/trial", "ms/commit",
                 "mean trial s", "rank 0 saturates at G ="],
                cells))
    big = max(r["groups"] for r in rows)
    print(f"target >= 98% steady-state utilization at {big} groups, table times: " + "; ".join(
        f"{r['method']} {verdict(r['utilization_steady'] >= 0.98)}"
        for r in rows if r["groups"] == big and r["time_scale"] == 1.0))
    write_json(args.json, {"args": vars(args), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
