"""Share of a real run spent checkpointing: ``configs/default.yaml`` under mpirun, store time measured.

    python bench/checkpoint_share.py [--ranks 3] [--trials 20] [--epochs 10] [--json PATH]

Runs ``run_experiment`` on every rank with the spec of configs/default.yaml (its budget and
epochs can be cut for a quick check) and the HDF5 store in a temporary directory. Rank 0's time
in the store (journal appends + commits) comes from the driver's own accounting. Reported:
commits, seconds in the store, run seconds, and the share (target <= 1% of the run time).
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


def child(args) -> int:
    import contextlib
    import io

    from mpi4py import MPI

    from nasrun.runtime.api import run_experiment
    from nasrun.spec import parse_spec
    from nasrun.store import open_store
    comm = MPI.COMM_WORLD
    text = (ROOT / "configs" / "default.yaml").read_text()
    text = text.replace("max_trials: 20", f"max_trials: {args.trials}").replace(
        "epochs: 10", f"epochs: {args.epochs}")
    spec = parse_spec(text, "configs/default.yaml")
    store = None
    timing: Dict[str, Any] = {}
    if comm.Get_rank() == 0:
        store = open_store(args.workdir)
    comm.Barrier()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        res = run_experiment(spec, text, store, comm=comm, resume=False, progress=False)
    if comm.Get_rank() == 0:
        assert res is not None  # rank 0 returns the run's summary
        cpu = res["stats"]["cpu_seconds"]
        timing.update(run_s=time.perf_counter() - t0, trials=res["trials"], saves=res["stats"]["commits"],
                      save_s=cpu.get("commit", 0.0) + cpu.get("log", 0.0))
        # What checkpointing costs the training: the time a group sat between a result and its
        # next trial (rank 0 saves after dispatching, so a group waits on a save only when its
        # result arrives while rank 0 is writing for another group).
        loaded = open_store(args.workdir).load()
        assert loaded is not None
        records = loaded.state.finished_records()
        recs = sorted((r for r in records if r.start is not None and r.end is not None),
                      key=lambda r: r.start)
        gaps, busy = 0.0, 0.0
        last_end: Dict[int, float] = {}
        for r in recs:
            if r.group in last_end:
                gaps += max(0.0, r.start - last_end[r.group])
            last_end[r.group] = r.end
            busy += r.end - r.start
        timing.update(group_gap_s=gaps, group_busy_s=busy)
        with open(args.out, "w") as f:
            json.dump(timing, f)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", type=int, default=3)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--json")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args)
    with tempfile.TemporaryDirectory(prefix="nasrun-ckpt-share-") as d:
        out = os.path.join(d, "r.json")
        cmd = mpirun_cmd(args.ranks, [__file__, "--child", "--trials", str(args.trials), "--epochs",
                                      str(args.epochs), "--out", out, "--workdir", d])
        p = subprocess.run(cmd, env=mpi_env(), capture_output=True, text=True, timeout=1200)
        if p.returncode != 0 or not os.path.exists(out):
            raise SystemExit(f"bench: the run failed (exit {p.returncode}):\n{p.stderr[-3000:]}")
        with open(out) as f:
            r = json.load(f)
    r["share"] = r["save_s"] / r["run_s"]
    r["group_gap_share"] = r["group_gap_s"] / max(1e-9, r["group_gap_s"] + r["group_busy_s"])
    print(table(f"checkpoint share of a real run: configs/default.yaml, {args.ranks} ranks, "
                f"{args.trials} trials x {args.epochs} epochs, HDF5 store",
                ["trials", "commits", "ms/commit", "s in the store", "run s", "rank-0 share",
                 "groups idle between trials"],
                [[r["trials"], r["saves"], f"{1e3 * r['save_s'] / max(1, r['saves']):.1f}",
                  f"{r['save_s']:.2f}", f"{r['run_s']:.1f}", f"{100 * r['share']:.2f}%",
                  f"{100 * r['group_gap_share']:.2f}%"]]))
    print("rank-0 share: rank 0's time in the store (journal + commits) / run time; groups idle: time groups "
          "waited between a result and their next trial (dispatch + any save they waited on) / group time")
    print(f"target <= 1% of run time in checkpoints: rank 0 {verdict(r['share'] <= 0.01)}, "
          f"worker groups {verdict(r['group_gap_share'] <= 0.01)}")
    write_json(args.json, {"args": vars(args), **r})
    return 0


if __name__ == "__main__":
    sys.exit(main())
