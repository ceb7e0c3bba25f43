"""Training overhead: nasrun's trainer vs a bare PyTorch loop, same model, data and epochs.

    python bench/training.py [--epochs 3] [--repeats 3] [--json PATH]

The child network is the first configuration that the default spec (configs/default.yaml: the
chain CNN on scikit-learn's digits, batch 32, Adam) samples; its recipe comes from
``nasrun.train.trainer.recipe_for`` as in a real trial. Compared, interleaved ``repeats`` times
on 1 rank with 1 thread (median wall time, training + per-epoch validation, both alike):

* bare: a plain loop written here (shuffle, forward, loss, backward, step; evaluate each epoch);
* nasrun: ``train_trial`` with the LocalBackend (flat-gradient status collective, per-epoch
  state export for checkpoints, curve bookkeeping);

then ``train_trial`` on a 2-rank group (``mpirun -np 2``, global batch split over the ranks) with
the Horovod and the torch.distributed (gloo) backends. samples/s = training samples x epochs /
wall time. Target: nasrun >= 0.97 of the bare loop on 1 rank. CPU only: there is no GPU here.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List

import torch  # noqa: E402
from _table import ROOT, mpi_env, mpirun_cmd, table, verdict, write_json
from torch import nn  # noqa: E402


def setup(epochs: int):
    from nasrun.spec import load_spec
    from nasrun.train.datasets import load_dataset
    from nasrun.train.models import build_model
    from nasrun.train.trainer import recipe_for
    spec = load_spec(str(ROOT / "configs" / "default.yaml"))
    s = spec.make_strategy().ask()
    data = load_dataset(spec.objective.dataset, spec.experiment.seed)
    recipe = recipe_for(spec.objective, s.config, None, spec.experiment.seed)
    recipe.epochs = epochs

    def model():
        torch.manual_seed(0)
        return build_model(spec.space.builtin, spec.space.options, s.config, data.input_shape,
                           data.num_classes, spec.objective.options)
    return s, data, recipe, model


def bare_loop(model: nn.Module, data, recipe) -> float:
    from nasrun.train.trainer import make_optimizer
    opt = make_optimizer(recipe, model.parameters())
    loss_fn = nn.CrossEntropyLoss()
    x, y, n, bs = data.x_train, data.y_train, len(data.y_train), recipe.batch_size
    correct = 0
    for epoch in range(recipe.epochs):
        model.train()
        idx = torch.randperm(n, generator=torch.Generator().manual_seed(epoch))
        for b in range(0, n, bs):
            bi = idx[b:b + bs]
            opt.zero_grad()
            loss_fn(model(x[bi]), y[bi]).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            for b in range(0, len(data.y_valid), 256):
                correct = int((model(data.x_valid[b:b + 256]).argmax(1) == data.y_valid[b:b + 256]).sum())
    return float(correct)


def nasrun_loop(s, model, data, recipe, backend, comm=None):
    from nasrun.train.trainer import train_trial
    return train_trial(s, model, data, recipe, backend, torch.device("cpu"), comm)


def child(args) -> int:
    from mpi4py import MPI

    from nasrun.train.backends import make_backend
    comm = MPI.COMM_WORLD
    torch.set_num_threads(1)
    s, data, recipe, make_model = setup(args.epochs)
    backend = make_backend(args.backend, comm, torch.device("cpu"))
    nasrun_loop(s, make_model(), data, recipe, backend, comm)  # warm-up (and backend setup)
    times = []
    for _ in range(args.repeats):
        comm.Barrier()
        t0 = time.perf_counter()
        nasrun_loop(s, make_model(), data, recipe, backend, comm)
        comm.Barrier()
        times.append(time.perf_counter() - t0)
    backend.shutdown()
    if comm.Get_rank() == 0:
        with open(args.out, "w") as f:
            json.dump({"backend": backend.name, "times": times}, f)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--backends", default="horovod,torch", help="2-rank backends ('' for none)")
    ap.add_argument("--json")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--backend", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args)
    torch.set_num_threads(1)
    from nasrun.train.backends import LocalBackend
    s, data, recipe, make_model = setup(args.epochs)
    samples = len(data.y_train) * recipe.epochs
    bare_loop(make_model(), data, recipe)  # warm-up
    times: Dict[str, List[float]] = {"bare": [], "nasrun": []}
    for _ in range(args.repeats):
        for name in ("bare", "nasrun"):
            m = make_model()
            t0 = time.perf_counter()
            if name == "bare":
                bare_loop(m, data, recipe)
            else:
                nasrun_loop(s, m, data, recipe, LocalBackend())
            times[name].append(time.perf_counter() - t0)
    rows: List[Dict[str, Any]] = [
        {"variant": f"{k} (1 rank)", "ranks": 1, "seconds": statistics.median(v), "times": v}
        for k, v in times.items()]
    for b in [x for x in args.backends.split(",") if x]:
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "r.json")
            cmd = mpirun_cmd(2, [__file__, "--child", "--backend", b, "--epochs", str(args.epochs),
                                 "--repeats", str(args.repeats), "--out", out])
            p = subprocess.run(cmd, env=mpi_env(), capture_output=True, text=True, timeout=600)
            if p.returncode != 0 or not os.path.exists(out):
                rows.append({"variant": f"nasrun {b} (2 ranks)", "ranks": 2,
                             "error": (p.stderr.strip().splitlines() or ["failed"])[-1][:120]})
                continue
            with open(out) as f:
                r = json.load(f)
            rows.append({"variant": f"nasrun {r['backend']} (2 ranks)", "ranks": 2,
                         "seconds": statistics.median(r["times"]), "times": r["times"]})
    base = rows[0]["seconds"]
    cells = []
    for r in rows:
        if "error" in r:
            cells.append([r["variant"], "-", "-", r["error"]])
            continue
        r["samples_per_s"] = samples / r["seconds"]
        r["vs_bare"] = base / r["seconds"]
        cells.append([r["variant"], f"{r['seconds']:.2f}", f"{r['samples_per_s']:,.0f}",
                      f"{r['vs_bare']:.3f}"])
    params = sum(p.numel() for p in make_model().parameters())
    print(table(f"training: digits chain CNN ({params:,} params), {recipe.epochs} epochs x "
                f"{len(data.y_train)} samples, batch {recipe.batch_size}, CPU, 1 thread/rank, "
                f"median of {args.repeats}", ["variant", "seconds", "samples/s", "vs bare 1 rank"], cells))
    print(f"target nasrun >= 0.97 of the bare loop on 1 rank: {verdict(rows[1]['vs_bare'] >= 0.97)} "
          f"({rows[1]['vs_bare']:.3f}); no GPU on this machine: the CUDA path is not measured")
    write_json(args.json, {"args": vars(args), "samples": samples, "params": params, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
