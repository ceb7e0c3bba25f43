"""Dispatch overhead: no-op trials through the real nasrun driver and MPI transport (same run).

    python bench/dispatch.py [--ranks 2,4,8] [--trials N] [--hdf5-trials N] [--optuna-trials N]
                             [--json PATH]

Per rank count R (``mpirun --oversubscribe -np R``: rank 0 + R-1 worker groups of 1 rank), one
MPI job runs, one after another:

* raw floor: rank 0 hands a small task dict to each worker with ``comm.send`` and answers every
  ``comm.recv(ANY_SOURCE)`` with the next one (mpi4py, pickled dicts, blocking calls);
* nasrun random / evolution ("keep"): ``run_experiment`` (the driver, MpiTransport, worker loop,
  ``objective.type: function`` returning at once; space nb201) with the in-memory store (the
  driver's event log and commits, no I/O);
* nasrun random + HDF5: the same with the HDF5 store (journal lines, incremental commits),
  with the trials/s of the first and of the last 1,000 trials (from the stored end times).

Rank 0's CPU time (``time.process_time``) per trial is the dispatch overhead; trials/s is wall
time. Optuna (RandomSampler, JournalStorage over JournalFileBackend, n_jobs=1 per process) runs
the same no-op trials in R processes sharing one journal file. Targets: <= 100 us rank-0 CPU per
trial, within 10x of the raw floor's wall time per trial, >= 25x Optuna's trials/s; with the HDF5
store (issue 11): >= 2,000 trials/s, <= 500 µs rank-0 CPU per trial, the last 1,000 trials at
>= 90% of the first 1,000's rate (``--ranks 4 --hdf5-trials 20000``).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict

from _table import ROOT, mpi_env, mpirun_cmd, table, verdict, write_json

SPEC = """
experiment: {{name: dispatch, seed: 0, output_dir: {dir}}}
space: {{builtin: nb201}}
strategy: {{name: {strategy}{options}}}
objective: {{type: function, function: "_noop:noop", python_path: ["{bench}"]}}
budget: {{max_trials: {trials}}}
resources: {{ranks_per_trial: 1, device: cpu}}
"""


# -- inside the MPI job -------------------------------------------------------------------------------
def raw_floor(comm, trials: int) -> dict:
    from mpi4py import MPI
    rank, size = comm.Get_rank(), comm.Get_size()
    comm.Barrier()
    if rank != 0:
        while True:
            task = comm.recv(source=0, tag=1)
            if task is None:
                return {}
            comm.send({"kind": "result", "trial_id": task["trial_id"], "metrics": {"v": 0.5}},
                      dest=0, tag=2)
    t0, c0 = time.perf_counter(), time.process_time()
    sent = done = 0
    for w in range(1, size):
        comm.send({"kind": "run", "trial_id": sent, "config": {"op": "conv"}}, dest=w, tag=1)
        sent += 1
    st = MPI.Status()
    while done < trials:
        comm.recv(source=MPI.ANY_SOURCE, tag=2, status=st)
        done += 1
        if sent < trials:
            comm.send({"kind": "run", "trial_id": sent, "config": {"op": "conv"}},
                      dest=st.Get_source(), tag=1)
            sent += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    for w in range(1, size):
        comm.send(None, dest=w, tag=1)
    return {"trials": done, "wall_s": wall, "cpu_s": cpu}


def nasrun_run(comm, strategy: str, trials: int, store_kind: str, workdir: str) -> dict:
    from nasrun.runtime.api import run_experiment
    from nasrun.spec import parse_spec
    from nasrun.store import MemoryStore, open_store
    rank = comm.Get_rank()
    d = os.path.join(workdir, f"{strategy}-{store_kind}")
    options = ", options: {population_size: 20, sample_size: 5}" if strategy == "evolution" else ""
    text = SPEC.format(dir=d, strategy=strategy, options=options, bench=ROOT / "bench", trials=trials)
    spec = parse_spec(text, "<dispatch bench>")
    store = None
    if rank == 0:
        store = open_store(d) if store_kind == "hdf5" else MemoryStore()
    comm.Barrier()
    t0, c0 = time.perf_counter(), time.process_time()
    res = run_experiment(spec, text, store, comm=comm, resume=False, progress=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if rank != 0:
        return {}
    assert res is not None  # rank 0 returns the run's summary
    stats = res["stats"]
    out = {"trials": res["trials"], "wall_s": wall, "cpu_s": cpu, "saves": stats["commits"],
           "save_s": stats["cpu_seconds"].get("commit", 0.0) + stats["cpu_seconds"].get("log", 0.0)}
    if store_kind == "hdf5":  # the rate at the start and at the end of the run (does it decay?)
        loaded = open_store(d).load()
        assert loaded is not None
        ends = sorted(r.end for r in loaded.state.finished_records() if r.end is not None)
        w = min(1000, max(2, len(ends) // 4))
        out["window"] = w
        out["first_rate"] = (w - 1) / max(1e-9, ends[w - 1] - ends[0])
        out["last_rate"] = (w - 1) / max(1e-9, ends[-1] - ends[-w])
    return out


def child(args) -> int:
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    results: Dict[str, Any] = {"ranks": comm.Get_size()}
    import contextlib
    import io
    results["raw"] = raw_floor(comm, args.trials)
    for strategy, store_kind, n in (("random", "keep", args.trials), ("evolution", "keep", args.trials),
                                    ("random", "hdf5", args.hdf5_trials)):
        # the driver logs one line per trial; keep it (it is part of the cost) but off the screen
        quiet = (contextlib.redirect_stdout(io.StringIO()) if comm.Get_rank() == 0
                 else contextlib.nullcontext())
        with quiet:
            r = nasrun_run(comm, strategy, n, store_kind, args.workdir)
        results[f"{strategy}-{store_kind}"] = r
    if comm.Get_rank() == 0:
        with open(args.out, "w") as f:
            json.dump(results, f)
    return 0


# -- Optuna ---------------------------------------------------------------------------------------------
def optuna_storage(path: str):
    import optuna
    try:
        backend = optuna.storages.journal.JournalFileBackend(path)
    except AttributeError:  # Optuna < 4
        backend = optuna.storages.JournalFileStorage(path)
    return optuna.storages.JournalStorage(backend)


def optuna_child(args) -> int:
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna_storage(args.journal)
    study = optuna.load_study(study_name="bench", storage=storage,
                              sampler=optuna.samplers.RandomSampler(seed=args.seed))
    ops = ["none", "skip", "conv1x1", "conv3x3", "avgpool"]

    def noop(trial):
        cfg = {f"edge{i}": trial.suggest_categorical(f"edge{i}", ops) for i in range(6)}
        return len(repr(cfg)) / 100.0

    while time.time() < args.start_at:
        time.sleep(0.001)
    t0 = time.time()
    study.optimize(noop, n_trials=args.trials)
    print(json.dumps({"start": t0, "end": time.time(), "trials": args.trials}))
    return 0


def run_optuna(procs: int, trials: int, workdir: str) -> dict:
    try:
        import optuna
    except ImportError:
        return {"error": "optuna is not installed (pip install optuna)"}
    journal = os.path.join(workdir, f"optuna-{procs}.log")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.create_study(study_name="bench", storage=optuna_storage(journal), direction="maximize")
    start_at = time.time() + 4.0 + 0.5 * procs  # every process has imported optuna by then
    per = max(1, trials // procs)
    ps = [subprocess.Popen([sys.executable, __file__, "--optuna-child", "--journal", journal,
                            "--trials", str(per), "--seed", str(i), "--start-at", str(start_at)],
                           stdout=subprocess.PIPE, text=True, env=mpi_env()) for i in range(procs)]
    outs = [json.loads(p.communicate(timeout=600)[0].strip().splitlines()[-1]) for p in ps]
    wall = max(o["end"] for o in outs) - min(o["start"] for o in outs)
    return {"trials": per * procs, "wall_s": wall, "version": optuna.__version__}


# -- the table ------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", default="2,4,8")
    ap.add_argument("--trials", type=int, default=3000, help="no-op trials per nasrun/raw run")
    ap.add_argument("--hdf5-trials", type=int, default=20000)
    ap.add_argument("--optuna-trials", type=int, default=600)
    ap.add_argument("--json")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--optuna-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    ap.add_argument("--journal", help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args)
    if args.optuna_child:
        return optuna_child(args)
    rows = []
    with tempfile.TemporaryDirectory(prefix="nasrun-dispatch-") as work:
        for r in [int(x) for x in args.ranks.split(",")]:
            out = os.path.join(work, f"r{r}.json")
            cmd = mpirun_cmd(r, [__file__, "--child", "--trials", str(args.trials), "--hdf5-trials",
                                 str(args.hdf5_trials), "--out", out, "--workdir", work])
            p = subprocess.run(cmd, env=mpi_env(), capture_output=True, text=True, timeout=900)
            if p.returncode != 0 or not os.path.exists(out):
                raise SystemExit(f"bench: the MPI job with {r} ranks failed (exit {p.returncode}):\n"
                                 + p.stderr[-3000:])
            with open(out) as f:
                res = json.load(f)
            res["optuna"] = run_optuna(r, args.optuna_trials, work)
            rows.append(res)
    print_tables(rows)
    shown = {k: v for k, v in vars(args).items() if not k.startswith(("child", "optuna_c"))}
    write_json(args.json, {"args": shown, "runs": rows, "summary": summarize(rows)})
    return 0


def per_trial(r: dict) -> dict:
    if not r or "trials" not in r:
        return {}
    n = r["trials"]
    return {"trials_per_s": n / r["wall_s"], "wall_us": 1e6 * r["wall_s"] / n,
            "cpu_us": 1e6 * r["cpu_s"] / n if "cpu_s" in r else None}


def summarize(rows) -> list:
    out = []
    for res in rows:
        raw = per_trial(res["raw"])
        opt = per_trial(res["optuna"]) if "error" not in res["optuna"] else {}
        for key in ("random-keep", "evolution-keep", "random-hdf5"):
            m = per_trial(res[key])
            s = {"ranks": res["ranks"], "variant": key, **m,
                 "x_raw_wall": m["wall_us"] / raw["wall_us"],
                 "x_optuna": m["trials_per_s"] / opt["trials_per_s"] if opt else None}
            if key == "random-hdf5":
                s["save_share"] = res[key]["save_s"] / res[key]["wall_s"]
                s["save_ms"] = 1e3 * res[key]["save_s"] / max(1, res[key]["saves"])
                s["saves"] = res[key]["saves"]
                for k in ("window", "first_rate", "last_rate"):
                    s[k] = res[key].get(k)
            out.append(s)
        out.append({"ranks": res["ranks"], "variant": "raw mpi4py", **raw})
        if opt:
            out.append({"ranks": res["ranks"], "variant": f"optuna {res['optuna']['version']} journal",
                        **opt, "cpu_us": None})
        else:
            out.append({"ranks": res["ranks"], "variant": "optuna", "error": res["optuna"]["error"]})
    return out


def print_tables(rows) -> None:
    summary = summarize(rows)
    cells = []
    for s in summary:
        if "error" in s:
            cells.append([s["ranks"], s["variant"], s["error"], "", "", "", ""])
            continue
        cells.append([s["ranks"], s["variant"], f"{s['trials_per_s']:,.0f}", f"{s['wall_us']:.0f}",
                      "-" if s.get("cpu_us") is None else f"{s['cpu_us']:.0f}",
                      f"{s['x_raw_wall']:.1f}x" if "x_raw_wall" in s else "-",
                      f"{s['x_optuna']:.0f}x" if s.get("x_optuna") else "-"])
    print(table("dispatch: no-op trials, mpirun --oversubscribe -np R (R-1 worker groups); "
                "rank-0 CPU = time.process_time on rank 0",
                ["R", "variant", "trials/s", "wall µs/trial", "rank-0 CPU µs/trial",
                 "wall vs raw", "trials/s vs optuna"], cells))
    checks = []
    for s in summary:
        if s["variant"] in ("random-keep", "evolution-keep"):
            checks.append(f"R={s['ranks']} {s['variant']}: CPU<=100us {verdict(s['cpu_us'] <= 100)}, "
                          f"<=10x raw {verdict(s['x_raw_wall'] <= 10)}, >=25x optuna "
                          f"{verdict(None if s['x_optuna'] is None else s['x_optuna'] >= 25)}")
        if s["variant"] == "random-hdf5":
            keep = s["last_rate"] / s["first_rate"] if s.get("first_rate") else None
            checks.append(f"R={s['ranks']} random-hdf5: {s['trials_per_s']:,.0f} trials/s "
                          f"(>= 2,000 {verdict(s['trials_per_s'] >= 2000)}), rank-0 CPU {s['cpu_us']:.0f} µs "
                          f"per trial (<= 500 {verdict(s['cpu_us'] <= 500)}); first {s['window']} trials "
                          f"{s['first_rate']:,.0f}/s, last {s['window']} {s['last_rate']:,.0f}/s "
                          f"(last >= 90% of first {verdict(None if keep is None else keep >= 0.9)}); "
                          f"{100 * s['save_share']:.1f}% of the run in the store ({s['saves']} commits)")
    print("\n".join(checks))


if __name__ == "__main__":
    sys.exit(main())
