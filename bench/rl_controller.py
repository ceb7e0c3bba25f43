"""The RL controller against random search and regularized evolution on NAS-Bench-201 (CIFAR-10).

    python bench/rl_controller.py [--seeds 30] [--trials 500] [--proxy] [--json PATH]

One simulated group (``nasrun simulate --workers 1``), the shared table. Per method, the mean and
std over seeds of the incumbent's valid accuracy after 50, 150 and ``--trials`` evaluations; the
one-sided Mann-Whitney U p-value of "better than random search" at each; how many distinct
architectures (NAS-Bench-201 canonical forms) each window of 25 trials proposed, early and late;
distinct per 100 trials; the strategy's ask+tell and all of rank 0's microseconds per trial.
``rl@8`` is the controller with 8 groups (its replicas sample while other results are
outstanding); ``/no-dedupe`` runs with ``strategy.dedupe: false`` (the default is on for the
table). Random search and evolution are the baselines measured in the same run. ``--proxy``: the
same on the chain space of configs/cifar10-chain.yaml with a synthetic objective per seed
(:func:`chain_landscape`; the chain has no table), to check the controller's defaults off the
table they are reported on.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.stats import mannwhitneyu  # noqa: E402

from nasrun.simulate import SimResult, render_table, simulate_spec  # noqa: E402
from nasrun.space import SearchSpace, builtin_params  # noqa: E402
from nasrun.space.builtin import config_key, nb201_key  # noqa: E402
from nasrun.store.base import TrialRecord  # noqa: E402
from nasrun.strategies import make_strategy  # noqa: E402
from nasrun.trial import Outcome  # noqa: E402

# label, workers, strategy.dedupe (None: the spec's default, on for the table)
METHODS = [("random", 1, None), ("evolution", 1, None), ("rl", 1, None), ("rl@8", 8, None),
           ("evolution/no-dedupe", 1, False), ("rl/no-dedupe", 1, False)]


def distinct_per(records, window):
    """Distinct canonical architectures per ``window`` consecutive trials (by trial id)."""
    keys = [nb201_key(r.suggestion.config) if "edge_1_0" in r.suggestion.config
            else config_key(r.suggestion.config)
            for r in sorted(records, key=lambda r: r.trial_id)]
    return [len(set(keys[i:i + window])) for i in range(0, len(keys) - window + 1, window)]


CHAIN_OPS = ("conv3x3", "conv5x5", "conv1x1", "sepconv3x3", "maxpool3x3", "avgpool3x3")
CHAIN_WIDTHS = (32, 64, 128)


def chain_landscape(seed):
    """A synthetic accuracy on configs/cifar10-chain.yaml's space (the chain has no table): per
    layer an operation and a width quality, an interaction between consecutive layers'
    operations, a skip quality and a depth term, all drawn from ``seed``; squashed into
    60..90. Cheap and deterministic: a check of the controller's defaults off NAS-Bench-201."""
    rng = np.random.default_rng([seed, 77])
    op_q, width_q = rng.normal(0, 1, (6, 6)), rng.normal(0, 1, (6, 3))
    pair_q, skip_q, depth_q = rng.normal(0, 0.7, (6, 6, 6)), rng.normal(0, 1, (6, 8)), rng.normal(0, 1.5, 6)

    def accuracy(c):
        n = c["num_layers"]
        v, prev = depth_q[n - 1], None
        for i in range(n):
            o = CHAIN_OPS.index(c[f"layer{i}_op"])
            v += op_q[i, o] + width_q[i, CHAIN_WIDTHS.index(c[f"layer{i}_width"])]
            if prev is not None:
                v += pair_q[i, prev, o]
            if i > 0:
                skips = ("none", "stem") + tuple(f"layer{j}" for j in range(i - 1))
                v += 0.5 * skip_q[i, skips.index(c[f"layer{i}_skip"])]
            prev = o
        return float(90 - 30 / (1 + np.exp(v / 3)))
    return accuracy


def chain_runs(name, opts, seeds, trials):
    """Sequential ask/tell runs (one group) on the chain proxy, as SimResult-like records."""
    space = SearchSpace(builtin_params("chain", {"kind": "cnn", "max_layers": 6,
                                                 "widths": list(CHAIN_WIDTHS)}))
    out = []
    for seed in seeds:
        f = chain_landscape(seed)
        s = make_strategy(name, space, seed=seed, **opts)
        res = SimResult(name, seed, 1)
        best, t0 = -math.inf, time.process_time()
        for n in range(1, trials + 1):
            q = s.ask()
            v = f(q.config)
            o = Outcome(q.trial_id, "done", {"valid_accuracy": v})
            s.tell(o)
            res.trials.append(TrialRecord(q, "done", o))
            best = max(best, v)
            res.trajectory.append((0.0, n, best, math.nan, 0.0))
        cpu = time.process_time() - t0
        res.stats = {"cpu_seconds": {"ask": cpu, "tell": 0.0}}
        res.overhead_us = 1e6 * cpu / trials
        out.append(res)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--trials", type=int, default=500)
    ap.add_argument("--methods", default=",".join(m for m, _, _ in METHODS))
    ap.add_argument("--options", default="{}", help="JSON options for rl")
    ap.add_argument("--proxy", action="store_true",
                    help="the chain space with a synthetic objective (chain_landscape) instead")
    ap.add_argument("--json", type=pathlib.Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    wanted = args.methods.split(",")
    checkpoints = [50, 150, args.trials]
    runs, rows = {}, []
    for label, workers, dedupe in METHODS:
        if label not in wanted:
            continue
        name = label.split("@")[0].split("/")[0]
        opts = json.loads(args.options) if name == "rl" else {}
        t0 = time.perf_counter()
        if args.proxy:
            if workers != 1 or dedupe is not None:
                continue
            runs[label] = chain_runs(name, opts, range(args.seeds), args.trials)
        else:
            runs[label] = simulate_spec(name, opts, workers=workers, max_trials=args.trials,
                                        seeds=range(args.seeds), dedupe=dedupe)
        wall = time.perf_counter() - t0
        rs = runs[label]
        per25 = [distinct_per(r.trials, 25) for r in rs]
        per100 = [statistics.fmean(distinct_per(r.trials, 100)) for r in rs]
        rows.append({"method": label, "workers": workers, "wall_s": wall,
                     "at": {n: [r.best_after(n)[0] for r in rs] for n in checkpoints},
                     "distinct25_first": statistics.fmean(d[0] for d in per25),
                     "distinct25_last": statistics.fmean(d[-1] for d in per25),
                     "distinct25_min_late": statistics.fmean(min(d[len(d) // 2:]) for d in per25),
                     "distinct100": statistics.fmean(per100),
                     "ask_tell_us": statistics.fmean(
                         1e6 * (r.stats["cpu_seconds"]["ask"] + r.stats["cpu_seconds"]["tell"])
                         / len(r.trials) for r in rs),
                     "rank0_us": statistics.fmean(r.overhead_us for r in rs)})
    ref = next((r for r in rows if r["method"] == "random"), None)
    headers = ["method"] + [f"@{n} (mean ± std)" for n in checkpoints] + \
        [f"p>random @{n}" for n in checkpoints] + \
        ["distinct/25 first, last, min late", "distinct/100", "ask+tell µs", "rank-0 µs"]
    cells = []
    for r in rows:
        ps = []
        for n in checkpoints:
            if ref is None or r is ref:
                ps.append("-")
            else:
                p = mannwhitneyu(r["at"][n], ref["at"][n], alternative="greater").pvalue
                r.setdefault("p_vs_random", {})[n] = p
                ps.append(f"{p:.2g}")
        cells.append([r["method"]] +
                     [f"{statistics.fmean(r['at'][n]):.2f} ± {statistics.stdev(r['at'][n]):.2f}"
                      for n in checkpoints] + ps +
                     [f"{r['distinct25_first']:.1f}, {r['distinct25_last']:.1f}, "
                      f"{r['distinct25_min_late']:.1f}", f"{r['distinct100']:.1f}",
                      f"{r['ask_tell_us']:.0f}", f"{r['rank0_us']:.0f}"])
    where = "chain space, synthetic objective" if args.proxy else \
        "NAS-Bench-201 CIFAR-10 (shared table)"
    print(render_table(f"{where}, {args.trials} trials, "
                       f"{args.seeds} seeds; load average {os.getloadavg()[0]:.1f}", headers, cells))
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
