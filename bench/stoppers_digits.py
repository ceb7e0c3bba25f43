"""Stoppers on real training: configs/default.yaml's digits search with 40 trials, without a
stopper, with ``stopper: median``, with ``stopper: curve`` and with the median rule's previous
defaults (``median_average_min5``: Golovin's running averages, 5 finished trials), per seed: total
epochs trained and the final best valid accuracy (the baseline, no stopper, is run by the same
command). ``--variants`` adds the median rule's two other settings (``median_average_min3``,
``median_value_min5``): its defaults were chosen among the four on seeds 10-19.

    python bench/stoppers_digits.py run DIR [--seeds 0 1 2] [--trials 40] [--jobs 3] [--variants ...]
    python bench/stoppers_digits.py table DIR [--json PATH]
    python bench/stoppers_digits.py curves DIR [--out tests/data/digits_curves.json]
    python bench/stoppers_digits.py cost [--data tests/data/digits_curves.json] [--json PATH]

``run`` writes one spec per variant and seed under DIR and runs each with ``nasrun run`` in one
process (one worker group: trials in ask order, so a run is reproducible and the stoppers'
decisions do not depend on timing); ``--jobs`` runs that many at once. ``table`` reads the
experiments; ``curves`` writes the baseline runs' per-epoch valid accuracy (the data file the
stopper tests replay, tests/test_stoppers.py). Target: at least 2x fewer epochs for at most 0.5
points lower final best (mean over seeds).

``cost`` replays recorded curves (no training) through ``stopper: curve`` as the one-group run
tells them and times rank 0's work per epoch report: ``should_stop`` as it runs (no fit while
the envelope reaches the best, families fitted only until the majority is decided) against
fitting all six families on every report, on the same reports in the same run.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, List, Sequence

import yaml
from _table import ROOT, mpi_env, table, verdict, write_json

from nasrun.store import open_store

#: variant -> the spec's strategy.stopper (None: no stopper); median: the rule's defaults
#: (``reference: value``, Optuna's; ``min_trials: 3``, Ray Tune's); median_average_min5: its
#: defaults before they were chosen on seeds 10-19 (Golovin's reference); the other two settings
#: of its two knobs complete the four they were chosen from (``--variants``)
STOPPERS: Dict[str, Any] = {
    "none": None, "median": "median", "curve": "curve",
    "median_average_min5": {"name": "median", "reference": "average", "min_trials": 5},
    "median_average_min3": {"name": "median", "reference": "average", "min_trials": 3},
    "median_value_min5": {"name": "median", "reference": "value", "min_trials": 5}}
#: run by default
DEFAULT_VARIANTS = ("none", "median", "curve", "median_average_min5")
VARIANTS = tuple(STOPPERS)


def spec_for(variant: str, seed: int, trials: int, out: str) -> Dict[str, Any]:
    d = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    d["experiment"] = {"name": f"digits-{variant}-s{seed}", "seed": seed,
                       "output_dir": os.path.join(out, "runs", f"{variant}-s{seed}")}
    d["budget"]["max_trials"] = trials
    if STOPPERS[variant] is not None:
        d["strategy"]["stopper"] = STOPPERS[variant]
    return d


def run(out: str, seeds: List[int], trials: int, jobs: int,
        variants: Sequence[str] = DEFAULT_VARIANTS) -> None:
    os.makedirs(out, exist_ok=True)
    todo = []
    for seed in seeds:
        for v in variants:
            path = os.path.join(out, f"{v}-s{seed}.yaml")
            with open(path, "w") as f:
                yaml.safe_dump(spec_for(v, seed, trials, out), f, sort_keys=False)
            todo.append(path)
    running: List[subprocess.Popen] = []
    while todo or running:
        while todo and len(running) < jobs:
            path = todo.pop(0)
            log = open(path[:-5] + ".log", "w")
            running.append(subprocess.Popen([sys.executable, "-m", "nasrun", "run", path],
                                            stdout=log, stderr=subprocess.STDOUT, env=mpi_env()))
        running[0].wait()
        running = [p for p in running if p.poll() is None]


def curves_of(out: str, variant: str, seed: int) -> List[Dict[str, Any]]:
    """The finished trials of one run, in trial order: id, curve of valid accuracy, stopped_at."""
    loaded = open_store(os.path.join(out, "runs", f"{variant}-s{seed}")).load()
    if loaded is None:
        raise SystemExit(f"no experiment for {variant}, seed {seed} under {out}/runs")
    recs = sorted(loaded.state.finished_records(), key=lambda r: r.trial_id)
    return [{"id": r.trial_id, "stopped_at": r.outcome.stopped_at,
             "curve": [float(p["valid_accuracy"]) for p in r.outcome.curve]} for r in recs
            if r.outcome is not None and r.outcome.ok]


def summarize(out: str) -> Dict[str, Any]:
    seeds = sorted({int(n.rsplit("-s", 1)[1]) for n in os.listdir(os.path.join(out, "runs"))
                    if n.startswith("none-s")})
    rows: Dict[str, Any] = {}
    for v in VARIANTS:
        for s in seeds:
            try:
                trials = curves_of(out, v, s)
            except SystemExit:
                continue
            rows[f"{v}-s{s}"] = {"variant": v, "seed": s, "trials": len(trials),
                                 "stopped": sum(t["stopped_at"] is not None for t in trials),
                                 "epochs": sum(len(t["curve"]) for t in trials),
                                 "best": max(t["curve"][-1] for t in trials)}
    return {"seeds": seeds, "runs": rows}


def print_table(res: Dict[str, Any]) -> None:
    runs, seeds = res["runs"], res["seeds"]
    cells = []
    means: Dict[str, Dict[str, float]] = {}
    for v in VARIANTS:
        got = [runs[f"{v}-s{s}"] for s in seeds if f"{v}-s{s}" in runs]
        for r in got:
            base = runs.get(f"none-s{r['seed']}")
            ratio = f"{base['epochs'] / r['epochs']:.2f}x" if base else "-"
            cells.append([v, r["seed"], r["trials"], r["stopped"], r["epochs"], ratio,
                          f"{100 * r['best']:.2f}"])
        if got:
            means[v] = {"epochs": sum(r["epochs"] for r in got) / len(got),
                        "best": sum(r["best"] for r in got) / len(got), "n": len(got)}
            cells.append([v, "mean", "", "", f"{means[v]['epochs']:.1f}", "",
                          f"{100 * means[v]['best']:.2f}"])
    print(table("digits search, 40 trials: epochs trained and final best valid accuracy (%)",
                ["stopper", "seed", "trials", "stopped", "epochs", "fewer epochs", "final best"], cells))
    base = means.get("none")
    for v in VARIANTS[1:]:
        if base and v in means:
            fewer = base["epochs"] / means[v]["epochs"]
            diff = 100 * (means[v]["best"] - base["best"])
            print(f"{v}: {fewer:.2f}x fewer epochs, final best {diff:+.2f} points vs no stopper "
                  f"(target: >= 2x, >= -0.5): {verdict(fewer >= 2.0 and diff >= -0.5)}")


def cost(data: str) -> Dict[str, Any]:
    """Per-report rank-0 time of the curve stopper on recorded curves (see the module doc)."""
    from nasrun.stoppers.base import clean
    from nasrun.stoppers.curve import CurveStopper
    with open(data) as f:
        doc = json.load(f)
    epochs = int(doc["epochs"])
    import scipy.optimize  # noqa: F401  (imported once, outside the timings)
    lazy: List[float] = []
    full: List[float] = []
    for run in doc["runs"]:
        s = CurveStopper(epochs)
        for tid, curve in enumerate(run["trials"]):
            n = epochs
            for t in range(1, epochs + 1):
                t0 = time.perf_counter()
                stop = s.should_stop(tid, curve[:t])
                lazy.append(time.perf_counter() - t0)
                if 3 <= t < epochs and s.best is not None and s.count >= int(s.opts["min_trials"]):
                    t0 = time.perf_counter()
                    s.probabilities(clean(curve[:t]), s.best)
                    full.append(time.perf_counter() - t0)
                else:
                    full.append(lazy[-1])  # neither fits anything on this report
                if stop:
                    n = t
                    break
            s.finished(tid, curve[:n], stopped=n < epochs)

    def stats(xs: List[float]) -> Dict[str, float]:
        a = sorted(xs)
        return {"reports": len(a), "mean_ms": 1e3 * sum(a) / len(a),
                "p95_ms": 1e3 * a[int(0.95 * (len(a) - 1))], "max_ms": 1e3 * a[-1],
                "total_s": sum(a)}
    return {"data": data, "should_stop": stats(lazy), "all_families_every_report": stats(full),
            "loadavg": os.getloadavg()[0]}


def print_cost(res: Dict[str, Any]) -> None:
    cells = [[k, v["reports"], f"{v['mean_ms']:.2f}", f"{v['p95_ms']:.2f}", f"{v['max_ms']:.2f}",
              f"{v['total_s']:.2f}"]
             for k, v in (("curve: should_stop", res["should_stop"]),
                          ("curve: all 6 families fitted every report",
                           res["all_families_every_report"]))]
    print(table(f"rank-0 time per epoch report, recorded digits curves "
                f"(load average {res['loadavg']:.2f})",
                ["work", "reports", "mean ms", "p95 ms", "max ms", "total s"], cells))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("run", "table", "curves", "cost"))
    ap.add_argument("dir", nargs="?", help="the runs' folder (run, table, curves)")
    ap.add_argument("--data", default=str(ROOT / "tests" / "data" / "digits_curves.json"),
                    help="cost: the recorded curves to replay")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(DEFAULT_VARIANTS),
                    help="run only these (the table reads whatever DIR holds)")
    ap.add_argument("--json", help="write the table's numbers here")
    ap.add_argument("--out", default=str(ROOT / "tests" / "data" / "digits_curves.json"))
    a = ap.parse_args(argv)
    if a.command == "cost":
        res = cost(a.data)
        print_cost(res)
        write_json(a.json, res)
        return 0
    if a.dir is None:
        ap.error(f"{a.command} needs DIR")
    if a.command == "run":
        run(a.dir, a.seeds, a.trials, a.jobs, a.variants)
    if a.command in ("run", "table"):
        res = summarize(a.dir)
        print_table(res)
        write_json(a.json, res)
    if a.command == "curves":
        doc = {"source": "bench/stoppers_digits.py curves: configs/default.yaml's digits search, "
                         "40 trials, evolution, no stopper, one worker group, per seed",
               "metric": "valid_accuracy", "epochs": 10,
               "runs": [{"seed": s, "trials": [[round(v, 6) for v in t["curve"]]
                                               for t in curves_of(a.dir, "none", s)]}
                        for s in summarize(a.dir)["seeds"]]}
        with open(a.out, "w") as f:
            json.dump(doc, f, separators=(",", ":"))
            f.write("\n")
        print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
