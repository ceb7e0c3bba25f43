"""Checkpoint cost against the size of the experiment: the incremental store and the full rewrite.

    python bench/store_scale.py [--sizes 1000,10000,100000] [--saves 40] [--json PATH]
                                [--resume-trials 100000] [--resume-strategies random,evolution,bohb]

Part 1, per size N (finished NAS-Bench-201-like trials: 6 categorical edges and an arch string,
12-point learning curves, 5 metrics, no model states):

* incremental (this code): an experiment of N trials written through the store as a run writes
  it (events, a commit every 100 finished trials), then ``--saves`` saves as the driver makes
  them: one more finished trial logged (asked, started, finished) and a commit. Reported: mean,
  median and worst save, one ``load()``, bytes on disk.
* full rewrite (the baseline, measured in the same run): the store as it was before the
  incremental layout, taken from this repository's history (commit ``BASELINE``, exported with
  ``git archive`` into a temporary directory and run in a child process): one snapshot of N
  trials saved, then saves that each add one trial and rewrite the whole history, and
  ``load(models=False)``. Without git or that commit the baseline is reported missing.

Part 2, a full resume at ``--resume-trials``: a simulated run of that many trials on the
NAS-Bench-201 table (the real driver and HDF5 store, 1,024 simulated groups), then the time to
``load()`` it and restore its strategy (snapshot + replay of the logged calls after it), per
strategy, and ``nasrun status DIR`` as a command (wall time, Python start-up included).
Targets (issue 11): a save at the largest size <= 2x a save at the smallest; resume <= 3 s;
status <= 1 s.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List

from _records import du as _du
from _records import make_records
from _table import table, verdict, write_json

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASELINE = "102f994"  # the last commit whose store rewrote the whole history on every save
# -- the incremental store --------------------------------------------------------------------
def incremental(n: int, saves: int, workdir: str) -> dict:
    from nasrun import trial as trial_mod
    from nasrun.store import base as store_base
    from nasrun.store import open_store
    from nasrun.store.sample import events_of, write_experiment
    d = os.path.join(workdir, f"inc-{n}")
    t0 = time.perf_counter()
    write_experiment(d, make_records(trial_mod, store_base, 0, n), commit_every=100)
    build = time.perf_counter() - t0
    store = open_store(d)
    loaded = store.load()
    assert loaded is not None
    store.begin(loaded.spec_text, loaded.version, loaded)
    store.commit({"elapsed_seconds": 0.0})  # as the driver does at start: opens the journal
    times = []
    seq = loaded.state.next_seq
    for k in range(saves):
        rec = make_records(trial_mod, store_base, n + k, 1)
        t = time.perf_counter()
        for e in events_of(rec, first_seq=seq):
            store.log(e)
        store.commit({"elapsed_seconds": float(k)})
        times.append(time.perf_counter() - t)
        seq += 2
    store.close()
    loads = []
    for _ in range(3):
        t = time.perf_counter()
        got = open_store(d).load()
        loads.append(time.perf_counter() - t)
        assert got is not None
        assert got.state.finished == n + saves, (got.state.finished, n + saves)
    return {"n": n, "build_s": build, "save_mean_s": statistics.fmean(times),
            "save_median_s": statistics.median(times), "save_max_s": max(times),
            "load_s": statistics.median(loads), "bytes": _du(d), "segments": len(loaded.segments)
            if hasattr(loaded, "segments") else None}


# -- the baseline: the full-rewrite store of commit BASELINE, in a child process -----------------
BASELINE_CHILD = r"""
import json, os, statistics, sys, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(1, sys.argv[2])
import nasrun
from nasrun import trial as trial_mod
from nasrun.store import base as store_base
from nasrun.store import HDF5Store, Snapshot
assert os.path.realpath(nasrun.__file__).startswith(os.path.realpath(sys.argv[1])), nasrun.__file__
from _records import make_records, du as _du
n, saves, d = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
os.makedirs(d, exist_ok=True)
path = os.path.join(d, "experiment.h5")
recs = make_records(trial_mod, store_base, 0, n)
snap = Snapshot("experiment: {name: b}\n", "baseline", recs, {}, {"elapsed_seconds": 0.0}, {})
store = HDF5Store(path)
store.save(snap)
times = []
for k in range(saves):
    snap.trials.extend(make_records(trial_mod, store_base, n + k, 1))
    t = time.perf_counter(); store.save(snap); times.append(time.perf_counter() - t)
loads = []
for _ in range(2):
    t = time.perf_counter(); got = HDF5Store(path).load(models=False); loads.append(time.perf_counter() - t)
    assert len(got.trials) == n + saves
print(json.dumps({"n": n, "save_mean_s": statistics.fmean(times), "save_median_s": statistics.median(times),
                  "save_max_s": max(times), "load_s": statistics.median(loads), "bytes": _du(d)}))
"""


def export_baseline(workdir: str):
    """The baseline's package tree, or None (and why) when git or the commit is missing."""
    dest = os.path.join(workdir, "baseline-src")
    try:
        arch = subprocess.run(["git", "-C", REPO, "archive", BASELINE, "nasrun"], capture_output=True,
                              check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        return None, f"git archive {BASELINE} failed ({e})"
    os.makedirs(dest)
    subprocess.run(["tar", "-x", "-C", dest], input=arch, check=True)
    return dest, ""


def baseline(src: str, n: int, saves: int, workdir: str) -> dict:
    d = os.path.join(workdir, f"full-{n}")
    child = os.path.join(workdir, "baseline_child.py")
    with open(child, "w") as f:
        f.write(BASELINE_CHILD)
    env = dict(os.environ, PYTHONPATH="")
    p = subprocess.run([sys.executable, child, src, os.path.dirname(os.path.abspath(__file__)), str(n),
                        str(saves), d], capture_output=True, text=True, env=env, cwd=workdir)
    if p.returncode != 0:
        raise RuntimeError(f"baseline child failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


# -- part 2: a full resume ---------------------------------------------------------------------
def resume(strategy: str, n: int, workdir: str) -> dict:
    from nasrun.runtime.driver import Driver  # noqa: F401  (imports what a resume imports)
    from nasrun.simulate import nb201_spec, simulate_run
    from nasrun.store import open_store
    from nasrun.store.replay import restore_strategy
    d = os.path.join(workdir, f"resume-{strategy}")
    # dedupe off: every ask a trial (the table has ~4,900 distinct cells, fewer than the trials)
    spec = nb201_spec(strategy, {}, seed=0, dedupe=False)
    t0 = time.perf_counter()
    # 1,024 groups and short trials: the run is made quickly (the trial times do not matter here)
    res = simulate_run(spec, groups=1024, max_trials=n, store="hdf5", directory=d, charge_cpu=False,
                       time_scale=0.01)
    sim = time.perf_counter() - t0
    t = time.perf_counter()
    loaded = open_store(d).load()
    t_load = time.perf_counter() - t
    assert loaded is not None
    t = time.perf_counter()
    strat = spec.make_strategy()
    replayed = restore_strategy(strat, loaded)
    t_restore = time.perf_counter() - t
    env = dict(os.environ)
    cmd = [os.path.join(os.path.dirname(sys.executable), "nasrun"), "status", d]
    if not os.path.exists(cmd[0]):
        cmd = [sys.executable, "-m", "nasrun.cli", "status", d]
    walls, cpus = [], []
    for _ in range(3):
        t, c = time.perf_counter(), _children_cpu()
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        walls.append(time.perf_counter() - t)
        cpus.append(_children_cpu() - c)
        if p.returncode != 0:
            raise RuntimeError(f"nasrun status failed: {p.stderr[-2000:]}")
    return {"strategy": strategy, "trials": loaded.state.finished, "simulate_s": sim,
            "sim_rank0_us_per_trial": res.overhead_us, "load_s": t_load, "restore_s": t_restore,
            "replayed_calls": replayed, "resume_s": t_load + t_restore,
            "status_wall_s": statistics.median(walls), "status_cpu_s": statistics.median(cpus),
            "bytes": _du(d)}


def _children_cpu() -> float:
    """User + system CPU seconds of the finished child processes (the status command's own work:
    on a loaded machine its wall time also counts the time it waited for a core)."""
    import resource
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--saves", type=int, default=40)
    ap.add_argument("--baseline-saves", default="", help="saves per size for the baseline (default: "
                    "5, 3 and 2 for sizes up to 10^3, 10^4 and above)")
    ap.add_argument("--resume-trials", type=int, default=100_000)
    ap.add_argument("--resume-strategies", default="random,evolution,bohb")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    sizes = [int(float(x)) for x in args.sizes.split(",") if x]
    work = tempfile.mkdtemp(prefix="nasrun-bench-store-")
    try:
        src, why = (None, "--no-baseline") if args.no_baseline else export_baseline(work)
        rows: List[Dict[str, Any]] = []
        for n in sizes:
            inc = incremental(n, args.saves, work)
            print(f"  incremental N={n}: save {1e3 * inc['save_mean_s']:.1f} ms, load "
                  f"{inc['load_s']:.2f} s", file=sys.stderr, flush=True)
            full = None
            if src is not None:
                k = 5 if n <= 1000 else 3 if n <= 10000 else 2
                if args.baseline_saves:
                    k = int(args.baseline_saves)
                full = baseline(src, n, k, work)
                print(f"  full rewrite N={n}: save {1e3 * full['save_mean_s']:.1f} ms, load "
                      f"{full['load_s']:.2f} s", file=sys.stderr, flush=True)
            rows.append({"n": n, "incremental": inc, "full_rewrite": full})
        cells = []
        for r in rows:
            i, f = r["incremental"], r["full_rewrite"]
            cells.append([f"{r['n']:,}",
                          f"{1e3 * i['save_mean_s']:.1f} (median {1e3 * i['save_median_s']:.1f}, "
                          f"worst {1e3 * i['save_max_s']:.0f})",
                          "-" if f is None else f"{1e3 * f['save_mean_s']:.0f}",
                          f"{i['load_s']:.2f}", "-" if f is None else f"{f['load_s']:.2f}",
                          f"{i['bytes'] / 1e6:.1f}", "-" if f is None else f"{f['bytes'] / 1e6:.1f}"])
        print(table("one save (ms) and one load (s) against the finished trials in the experiment",
                    ["trials", "save ms, incremental", "save ms, full rewrite", "load s, incr.",
                     "load s, full", "MB incr.", "MB full"], cells))
        if src is None:
            print(f"baseline missing: {why}")
        first, last = rows[0]["incremental"], rows[-1]["incremental"]
        ratio = last["save_mean_s"] / first["save_mean_s"]
        print(f"save at {sizes[-1]:,} / save at {sizes[0]:,}: {ratio:.2f}x (target <= 2x): "
              f"{verdict(ratio <= 2.0)}")
        res_rows = []
        if args.resume_trials > 0:
            for s in [x for x in args.resume_strategies.split(",") if x]:
                r = resume(s, args.resume_trials, work)
                print(f"  resume {s}: {r['resume_s']:.2f} s", file=sys.stderr, flush=True)
                res_rows.append(r)
            print(table(f"a full resume of {args.resume_trials:,} trials (NB201 table, simulated run)",
                        ["strategy", "trials", "load s", "strategy restored s", "calls replayed",
                         "resume s", "nasrun status s", "status CPU s", "MB"],
                        [[r["strategy"], f"{r['trials']:,}", f"{r['load_s']:.2f}", f"{r['restore_s']:.2f}",
                          r["replayed_calls"], f"{r['resume_s']:.2f}", f"{r['status_wall_s']:.2f}",
                          f"{r['status_cpu_s']:.2f}", f"{r['bytes'] / 1e6:.1f}"] for r in res_rows]))
            print(f"load average now (1/5/15 min): {' / '.join(f'{x:.1f}' for x in os.getloadavg())} "
                  f"on {os.cpu_count()} CPUs: wall times above include waiting for a core")
            print("targets: resume <= 3 s: " + "; ".join(
                f"{r['strategy']} {verdict(r['resume_s'] <= 3.0)}" for r in res_rows)
                + "; status <= 1 s: " + "; ".join(
                f"{r['strategy']} {verdict(r['status_wall_s'] <= 1.0)}" for r in res_rows))
        write_json(args.json, {"args": vars(args), "rows": rows, "save_ratio": ratio,
                               "resume": res_rows, "baseline": BASELINE if src else None})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
