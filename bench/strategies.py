"""Every strategy side by side: NAS-Bench-201 (CIFAR-10), Branin / Hartmann-6, a chain-space proxy.

    python bench/strategies.py [--seeds 30] [--evals 500] [--procs 2] [--quick] [--json PATH]

1. NAS-Bench-201 CIFAR-10 (the shared tables, :class:`nasrun.objectives.nb201_table.
   NB201Objective`: the 200-epoch accuracies, the 12-epoch ones below 200 epochs, simulated
   training time), 1 group and 8 groups: per method the best valid accuracy among full-budget
   evaluations and the test accuracy of that pick after 50, 150 and 500 finished evaluations
   (mean ± std over seeds; a multi-fidelity method's low-budget trials count as evaluations
   too), the evaluations to reach random search's mean 500-evaluation valid accuracy (median over
   the seeds that reach it) and rank 0's ask+tell CPU µs per trial.
2. Branin and Hartmann-6 (1 group, 50 evaluations): mean simple regret, and random's regret
   divided by each method's; the same with ``--async-groups`` (8) groups, each evaluation taking
   a random 0.5-1.5 simulated seconds, so results come back out of order (section ``async``:
   how the model-based methods handle pending trials on landscapes other than the table).
3. The chain space of configs/cifar10-chain.yaml with a cheap synthetic objective
   (bench/_functions.py): the same methods on a landscape of another shape, as a check that
   the defaults are not tuned to NAS-Bench-201.
4. ask+tell CPU µs with 100, 1,000 and 5,000 observations (NAS-Bench-201 space; the history is
   built with random asks, then 20 model asks are timed).

The runs drive each strategy directly (ask, evaluate, tell) on a simulated clock: the same
objective and trial counting as ``nasrun simulate``, without the driver and store, whose cost
per trial (about 18 s per 500-trial run) would make 30 seeds x 10 methods x 2 settings take
hours. Runs are spread over ``--procs`` processes.
"""
from __future__ import annotations

import argparse
import heapq
import math
import os
import pathlib
import statistics
import subprocess
import sys
import time
from multiprocessing import get_context
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _functions import branin, chain_proxy, hartmann6  # noqa: E402
from _table import ROOT, table, write_json  # noqa: E402

from nasrun.space import SearchSpace, builtin_params  # noqa: E402
from nasrun.strategies import FINISHED, STRATEGIES, WAIT, make_strategy  # noqa: E402
from nasrun.strategies.fidelity import Fidelities  # noqa: E402
from nasrun.trial import Outcome, Suggestion  # noqa: E402

OLD = ["random", "evolution", "rl", "hyperband", "asha", "bohb"]
NEW = ["gp", "smac", "tpe", "local_search"]
METHODS = OLD + NEW
SINGLE = [m for m in METHODS if not STRATEGIES[m].multi_fidelity]  # for objectives without epochs
HEAVY = {"gp": 0, "smac": 1, "bohb": 2, "tpe": 3, "rl": 4}  # run first: better packing
# what a table spec fills in for a multi-fidelity strategy: the budgets and the table's fidelities
NB201_BUDGETS: Dict[str, Any] = {"min_budget": 12.0, "max_budget": 200.0,
                 "fidelities": Fidelities.of(12.0, 200.0, (12.0, 200.0))}

# (valid, test, simulated seconds, full budget?) of one suggestion; valid None for a failure
Evaluate = Callable[[Suggestion], Tuple[Optional[float], float, float, bool]]


def drive(strategy: Any, evaluate: Evaluate, groups: int, n_evals: int, metric: str,
          sign: float) -> Dict[str, Any]:
    """Run ``strategy`` with ``groups`` simulated groups until ``n_evals`` evaluations finished.

    Returns the best-so-far (by ``sign * value``, full-budget evaluations only) and the test
    value of that pick after each finished evaluation, ask+tell µs per trial (CPU time of
    this process: on a shared machine wall time would measure the other processes too) and the
    groups' utilization until the last evaluation counted finished (busy / (groups x time); a
    group is idle when the strategy answers WAIT)."""
    running: List[Tuple[float, int, Suggestion, Tuple[Optional[float], float, float, bool]]] = []
    cpu, seq, now, busy = 0.0, 0, 0.0, 0.0
    best_valid: List[float] = []
    best_test: List[float] = []
    best: Optional[Tuple[float, float]] = None

    def launch() -> bool:
        nonlocal cpu, seq, busy
        t0 = time.process_time()
        s = strategy.ask()
        cpu += time.process_time() - t0
        if s is WAIT or s is FINISHED:
            return False
        result = evaluate(s)
        heapq.heappush(running, (now + result[2], seq, s, result))
        busy += result[2]
        seq += 1
        return True

    while len(running) < groups and len(best_valid) + len(running) < n_evals and launch():
        pass
    while running and len(best_valid) < n_evals:
        now, _, s, (valid, test, _, full) = heapq.heappop(running)
        metrics = {} if valid is None else {metric: valid}
        outcome = Outcome(s.trial_id, "done" if valid is not None else "failed", metrics)
        t0 = time.process_time()
        strategy.tell(outcome)
        cpu += time.process_time() - t0
        if valid is not None and full and (best is None or sign * valid > sign * best[0]):
            best = (valid, test)
        best_valid.append(best[0] if best else math.nan)
        best_test.append(best[1] if best else math.nan)
        while len(running) < groups and len(best_valid) + len(running) < n_evals and launch():
            pass
    busy -= sum(end - now for end, *_ in running)  # the unfinished part of trials still running
    util = busy / (groups * now) if now > 0 else math.nan
    return {"valid": best_valid, "test": best_test, "us": 1e6 * cpu / max(1, seq), "util": util}


# -- the objectives ----------------------------------------------------------------------------
def nb201_run(method: str, seed: int, groups: int, n_evals: int) -> Dict[str, Any]:
    from nasrun.objectives.nb201_table import FULL_EPOCHS, NB201Objective
    space = SearchSpace(builtin_params("nb201", {}))
    objective = NB201Objective()
    options = dict(NB201_BUDGETS) if STRATEGIES[method].multi_fidelity else {}
    strategy = make_strategy(method, space, seed=seed, **options)

    def evaluate(s: Suggestion) -> Tuple[Optional[float], float, float, bool]:
        outcome, seconds = objective.evaluate(s)
        full = s.budget is None or float(s.budget) >= FULL_EPOCHS
        return (outcome.value("valid_accuracy"), float(outcome.metrics.get("test_accuracy", math.nan)),
                seconds, full)
    return drive(strategy, evaluate, groups, n_evals, "valid_accuracy", 1.0)


FUNCTIONS = {"branin": branin, "hartmann6": hartmann6, "chain": chain_proxy}
FUNCTION_KINDS = ("function", "async")  # task kinds run by function_run (1 group / several)


def function_run(name: str, method: str, seed: int, n_evals: int, groups: int = 1) -> Dict[str, Any]:
    """One run on a test function; with several groups each evaluation takes a random 0.5-1.5
    simulated seconds (seeded), so results come back out of order as on a cluster."""
    space, f, optimum = FUNCTIONS[name]()
    mode = "max" if optimum is None else "min"
    strategy = make_strategy(method, space, seed=seed, metric="value", mode=mode)
    durations = np.random.default_rng([seed, 0xA5])

    def evaluate(s: Suggestion) -> Tuple[Optional[float], float, float, bool]:
        v = f(s.config)
        return v, v, 1.0 if groups == 1 else float(durations.uniform(0.5, 1.5)), True
    return drive(strategy, evaluate, groups, n_evals, "value", 1.0 if mode == "max" else -1.0)


def ask_cost(method: str, n_obs: int, timed: int) -> float:
    """µs per ask+tell after ``n_obs`` observations (model-based: built with random asks)."""
    from nasrun.objectives.nb201_table import NB201Objective
    space = SearchSpace(builtin_params("nb201", {}))
    objective = NB201Objective()
    options = dict(NB201_BUDGETS) if STRATEGIES[method].multi_fidelity else {}
    model_based = "random_fraction" in STRATEGIES[method].options and method in NEW
    if model_based:
        options["random_fraction"] = 1.0
    strategy = make_strategy(method, space, seed=0, **options)

    def step() -> None:
        s = strategy.ask()
        if not isinstance(s, Suggestion):  # WAIT or FINISHED
            return
        strategy.tell(objective.evaluate(s)[0])
    for _ in range(n_obs):
        step()
    if model_based:
        strategy.opts["random_fraction"] = STRATEGIES[method].options["random_fraction"]
    t0 = time.process_time()
    for _ in range(timed):
        step()
    return 1e6 * (time.process_time() - t0) / timed


def _task(task: Tuple[Any, ...]) -> Tuple[Tuple[Any, ...], Any]:
    import torch
    torch.set_num_threads(1)
    kind = task[0]
    if kind == "nb201":
        return task, nb201_run(*task[1:])
    if kind in FUNCTION_KINDS:
        return task, function_run(*task[1:])
    return task, ask_cost(*task[1:])


# -- tables -------------------------------------------------------------------------------------
def _stats(xs: Sequence[float]) -> List[float]:
    """[mean, std] of the values that are not NaN (a run with no full-budget result yet)."""
    xs = [x for x in xs if not math.isnan(x)]
    if not xs:
        return [math.nan, math.nan]
    return [statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0]


def _ms(xs: Sequence[float], fmt: str = ".2f") -> str:
    mean, sd = _stats(xs)
    return "-" if math.isnan(mean) else f"{mean:{fmt}} ± {sd:{fmt}}"


def _p_greater(xs: Sequence[float], ys: Sequence[float]) -> float:
    """One-sided Mann-Whitney U p-value that ``xs`` tend to be larger than ``ys``."""
    from scipy.stats import mannwhitneyu
    xs, ys = [x for x in xs if not math.isnan(x)], [y for y in ys if not math.isnan(y)]
    if not xs or not ys:
        return math.nan
    return float(mannwhitneyu(xs, ys, alternative="greater").pvalue)


def _reach(runs: Sequence[Mapping[str, Any]], target: float,
           sign: float = 1.0) -> Tuple[Optional[float], int]:
    hits = []
    for r in runs:
        n = next((i + 1 for i, v in enumerate(r["valid"]) if sign * v >= sign * target), None)
        if n is not None:
            hits.append(n)
    return (statistics.median(hits) if hits else None), len(hits)


def nb201_tables(results: Mapping[Tuple[str, int], List[Dict[str, Any]]], groups: Sequence[int],
                 checkpoints: Sequence[int]) -> Tuple[List[str], List[Dict[str, Any]]]:
    texts, rows = [], []
    for g in groups:
        target = _stats([r["valid"][-1] for r in results[("random", g)]])[0]
        mid = checkpoints[len(checkpoints) // 2]
        cells = []
        for m in [m for m in METHODS if (m, g) in results]:
            runs = results[(m, g)]
            reach, hit = _reach(runs, target)
            row: Dict[str, Any] = {"groups": g, "method": m, "random_final": target,
                                   "evals_to_random_final": reach, "reached": hit, "seeds": len(runs),
                                   "ask_tell_us": statistics.fmean(r["us"] for r in runs)}
            cell = [m]
            for n in checkpoints:
                valid = [r["valid"][n - 1] for r in runs]
                test = [r["test"][n - 1] for r in runs]
                row[f"valid_{n}"], row[f"test_{n}"] = _stats(valid), _stats(test)
                cell += [_ms(valid), _ms(test)]
            row[f"p_vs_random_{mid}"] = _p_greater([r["valid"][mid - 1] for r in runs],
                                                   [r["valid"][mid - 1] for r in results[("random", g)]])
            row["utilization"] = statistics.fmean(r["util"] for r in runs)
            cell += [f"{reach if reach is not None else '-'} ({hit}/{len(runs)})",
                     "-" if m == "random" else f"{row[f'p_vs_random_{mid}']:.2g}",
                     f"{100 * row['utilization']:.1f}%", f"{row['ask_tell_us']:.0f}"]
            rows.append(row)
            cells.append(cell)
        headers = ["method"] + [f"{k} @{n}" for n in checkpoints for k in ("valid", "test")] + [
            "evals to random's final (median, reached)", f"p > random @{mid}", "utilization",
            "ask+tell CPU µs"]
        texts.append(table(f"NAS-Bench-201 CIFAR-10, {g} group(s), {len(results[('random', g)])} seeds "
                           f"(random's mean valid after {checkpoints[-1]}: {target:.2f})", headers, cells))
    return texts, rows


def regret_table(results: Mapping[Tuple[str, str], List[Dict[str, Any]]], n_evals: int,
                 groups: int) -> Tuple[str, List[Dict[str, Any]]]:
    """Branin and Hartmann-6: mean (median) simple regret after ``n_evals`` evaluations and
    random's mean divided by each method's."""
    rows: List[Dict[str, Any]] = []
    cells = []
    regret: Dict[Tuple[str, str], List[float]] = {}
    single = [m for m in SINGLE if ("branin", m) in results]
    for name in ("branin", "hartmann6"):
        optimum = FUNCTIONS[name]()[2]
        assert optimum is not None
        for m in single:
            regret[(name, m)] = [r["valid"][n_evals - 1] - optimum for r in results[(name, m)]]
    for m in single:
        row: Dict[str, Any] = {"method": m}
        cell = [m]
        for name in ("branin", "hartmann6"):
            mean = statistics.fmean(regret[(name, m)])
            base = statistics.fmean(regret[(name, "random")])
            row[f"{name}_regret"] = mean
            row[f"{name}_regret_median"] = statistics.median(regret[(name, m)])
            row[f"{name}_random_over_method"] = base / mean if mean > 0 else math.inf
            cell += [f"{mean:.4f} ({row[f'{name}_regret_median']:.4f})",
                     f"{row[f'{name}_random_over_method']:.1f}x"]
        rows.append(row)
        cells.append(cell)
    seeds = len(results[("branin", "random")])
    return table(f"Simple regret after {n_evals} evaluations, mean (median) over {seeds} seeds, "
                 f"{groups} group{'s' if groups > 1 else ''}",
                 ["method", "Branin regret", "random / method", "Hartmann-6 regret",
                  "random / method"], cells), rows


def function_tables(results: Mapping[Tuple[str, str], List[Dict[str, Any]]],
                    n_evals: int, chain_evals: int) -> Tuple[List[str], List[Dict[str, Any]]]:
    single = [m for m in SINGLE if ("branin", m) in results]
    text0, rows = regret_table(results, n_evals, 1)
    text = [text0]
    chain_seeds = len(results[("chain", "random")])
    chain = {m: results[("chain", m)] for m in single}
    points = [chain_evals // 3, chain_evals]
    target = statistics.fmean(r["valid"][-1] for r in chain["random"])
    ccells = []
    for m in single:
        reach, hit = _reach(chain[m], target)
        row = {"method": m, "chain_reach": reach, "chain_reached": hit}
        cell = [m]
        for n in points:
            vals = [r["valid"][n - 1] for r in chain[m]]
            row[f"chain_{n}"] = statistics.fmean(vals)
            cell.append(_ms(vals))
        cell.append(f"{reach if reach is not None else '-'} ({hit}/{len(chain[m])})")
        rows.append(row)
        ccells.append(cell)
    text.append(table(f"Chain space (configs/cifar10-chain.yaml) with the synthetic proxy, 1 group, "
                      f"{chain_seeds} seeds "
                      f"(random's mean after {chain_evals}: {target:.2f})",
                      ["method"] + [f"best @{n}" for n in points] + ["evals to random's final"], ccells))
    return text, rows


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--evals", type=int, default=500, help="NAS-Bench-201 evaluations per run")
    ap.add_argument("--groups", default="1,8")
    ap.add_argument("--function-seeds", type=int, default=30, help="seeds for Branin and Hartmann-6")
    ap.add_argument("--function-evals", type=int, default=50)
    ap.add_argument("--chain-evals", type=int, default=150)
    ap.add_argument("--sizes", default="100,1000,5000", help="observations for the ask+tell cost")
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="a tiny run for the smoke test")
    ap.add_argument("--fidelity-work", action="store_true",
                    help="also run bench/fidelity_work.py (work-matched multi-fidelity comparison)")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated (random is always run)")
    ap.add_argument("--sections", default="nb201,functions,async,cost",
                    help="which parts to run (comma-separated): nb201, functions, async, cost")
    ap.add_argument("--async-groups", type=int, default=8,
                    help="groups for Branin and Hartmann-6 run asynchronously (section async)")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    sections = set(args.sections.split(","))
    methods = [m for m in METHODS if m in set(args.methods.split(",")) | {"random"}]
    single = [m for m in methods if m in SINGLE]
    if args.quick:
        args.seeds, args.evals, args.function_evals, args.chain_evals = 2, 30, 12, 12
        args.function_seeds = 2
        args.sizes = "20,40"
    groups = [int(g) for g in args.groups.split(",")]
    sizes = [int(s) for s in args.sizes.split(",")]
    checkpoints = sorted({max(1, args.evals // 10), max(1, 3 * args.evals // 10), args.evals})
    tasks: List[Tuple[Any, ...]] = []
    for m in methods if "nb201" in sections else []:
        for g in groups:
            tasks += [("nb201", m, s, g, args.evals) for s in range(args.seeds)]
    for name, n, seeds in (("branin", args.function_evals, args.function_seeds),
                           ("hartmann6", args.function_evals, args.function_seeds),
                           ("chain", args.chain_evals, args.seeds)):
        for m in single if "functions" in sections else []:
            tasks += [("function", name, m, s, n) for s in range(seeds)]
    for name in ("branin", "hartmann6") if "async" in sections else ():
        tasks += [("async", name, m, s, args.function_evals, args.async_groups)
                  for m in single for s in range(args.function_seeds)]
    timed = 5 if args.quick else 20
    if "cost" in sections:
        tasks += [("cost", m, n, timed) for m in methods if m in ["random", "evolution"] + NEW
                  for n in sizes]
    tasks.sort(key=lambda t: (t[0] in FUNCTION_KINDS, HEAVY.get(t[2] if t[0] in FUNCTION_KINDS else t[1], 9)))
    t0 = time.perf_counter()
    with get_context("fork").Pool(args.procs) as pool:
        done = []
        for d in pool.imap_unordered(_task, tasks, chunksize=1):
            done.append(d)
            if len(done) % 50 == 0:
                print(f"{len(done)}/{len(tasks)} runs, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    wall = time.perf_counter() - t0
    nb: Dict[Tuple[str, int], List[Dict[str, Any]]] = {}
    fn: Dict[Tuple[str, str], List[Dict[str, Any]]] = {}
    asy: Dict[Tuple[str, str], List[Dict[str, Any]]] = {}
    cost: Dict[Tuple[str, int], float] = {}
    for task, res in sorted(done, key=lambda d: str(d[0])):
        if task[0] == "nb201":
            nb.setdefault((task[1], task[3]), []).append(res)
        elif task[0] == "function":
            fn.setdefault((task[1], task[2]), []).append(res)
        elif task[0] == "async":
            asy.setdefault((task[1], task[2]), []).append(res)
        else:
            cost[(task[1], task[2])] = res
    nb_text, nb_rows = nb201_tables(nb, groups, checkpoints) if nb else ([], [])
    fn_text, fn_rows = function_tables(fn, args.function_evals, args.chain_evals) if fn else ([], [])
    if asy:
        async_text, async_rows = regret_table(asy, args.function_evals, args.async_groups)
        fn_text.append(async_text)
    else:
        async_rows = []
    cost_rows = [{"method": m, **{str(n): cost[(m, n)] for n in sizes}}
                 for m in ["random", "evolution"] + NEW if (m, sizes[0]) in cost]
    cost_text = [table(f"ask+tell CPU µs per trial after N observations (NAS-Bench-201 space, mean of "
                       f"{timed})",
                       ["method"] + [f"N = {n:,}" for n in sizes],
                       [[r["method"]] + [f"{r[str(n)]:.0f}" for n in sizes] for r in cost_rows])
                 ] if cost else []
    for text in nb_text + fn_text + cost_text:
        print(text)
    load = os.getloadavg()
    print(f"wall time {wall:.0f} s with {args.procs} processes "
          f"(load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f})")
    if args.fidelity_work:
        # the work-matched (epochs) comparison of the multi-fidelity methods lives in its own bench
        script = ROOT / "bench" / "fidelity_work.py"
        if script.exists():
            subprocess.run([sys.executable, str(script)] + (["--quick"] if args.quick else []), check=True)
        else:
            print("bench/fidelity_work.py is not there yet: no work-matched comparison")
    out = {"args": vars(args), "checkpoints": checkpoints, "nb201": nb_rows, "functions": fn_rows,
           "functions_async": async_rows,
           "ask_tell_us": cost_rows, "wall_seconds": wall, "load": list(load)}
    write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
