"""Checkpoint write/read speed: HDF5 store vs torch.save vs a raw sequential write (same run).

    python bench/checkpoint.py [--sizes 1e6,25e6,100e6] [--dir /tmp] [--json out.json]

For each size N it builds a model state of N float32 parameters plus Adam-like optimizer state
(exp_avg, exp_avg_sq: 3N floats, 12N bytes in 8 tensors of each kind) and times:

* raw: the same bytes written sequentially to one file, then fsync (the disk's limit);
* hdf5 save: what a worker group's leader does with a trial's state,
  ``nasrun.store.states.write_state_file`` (one HDF5 file: checksums, temporary name, fsync,
  rename, directory fsync);
* training stall: what the trainer waits for when it hands a state to the background writer
  (``AsyncStateWriter``): the copy of every tensor to host memory and ``submit``; the write
  itself goes on on the writer thread;
* torch.save + fsync of the same tensors; reads: ``read_state_file`` (checksums verified) and
  ``torch.load(weights_only=True)``. Reads come from the page cache right after the write, for
  both alike: they measure the formats' overhead, not the disk.

Then, for the smallest size only, gzip-1 chunked HDF5 datasets (what compression buys on float
weights). The target: hdf5 save >= 50% of the raw write rate.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import tempfile
import time

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nasrun.store import ModelState  # noqa: E402
from nasrun.store.states import AsyncStateWriter, FileStates, read_state_file, write_state_file  # noqa: E402


def model_state(n: int) -> ModelState:
    rng = np.random.default_rng(0)
    tensors = {}
    per = max(1, n // 8)
    for kind in ("param", "exp_avg", "exp_avg_sq"):
        for i in range(8):
            tensors[f"{kind}.layer{i}.weight"] = (rng.standard_normal(per, dtype=np.float32) * 0.02)
    return ModelState(0, 1, tensors, {"optimizer": {"lr": 1e-3, "betas": [0.9, 0.999], "step": 100}})


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)


def raw_write(path: str, ms: ModelState) -> None:
    with open(path, "wb") as f:
        for t in ms.tensors.values():
            f.write(t.data.cast("B"))
        f.flush()
        os.fsync(f.fileno())


def torch_save(path: str, ms: ModelState) -> None:
    import torch
    torch.save({k: torch.from_numpy(v) for k, v in ms.tensors.items()}, path)
    fsync(path)


def gzip_write(path: str, ms: ModelState) -> int:
    with h5py.File(path, "w") as f:
        for k, v in ms.tensors.items():
            f.create_dataset(k, data=v, chunks=(min(len(v), 1 << 18),), compression="gzip",
                             compression_opts=1, shuffle=True)
    fsync(path)
    return os.path.getsize(path)


def bench_size(n: int, base: str, gzip: bool, repeats: int) -> dict:
    import torch
    ms = model_state(n)
    nbytes = sum(t.nbytes for t in ms.tensors.values())
    mb = nbytes / 1e6
    d = tempfile.mkdtemp(prefix="nasrun-bench-", dir=base)
    times: dict = {}

    def rec(key, fn):
        dt, out = timed(fn)
        times.setdefault(key, []).append(dt)
        return out

    try:
        tp, rp = os.path.join(d, "state.pt"), os.path.join(d, "raw.bin")
        for rep in range(repeats):  # interleaved, so disk noise hits every method alike
            rec("raw_write_s", lambda: raw_write(rp, ms))
            os.remove(rp)
            sd = os.path.join(d, f"run{rep}")
            ref = rec("hdf5_save_s", functools.partial(write_state_file, sd, ms))
            got = rec("hdf5_load_s", functools.partial(read_state_file, sd, ref))
            assert all(np.array_equal(got.tensors[k], v) for k, v in ms.tensors.items())
            del got
            writer = AsyncStateWriter(FileStates(sd))
            rec("stall_s", lambda w=writer: w.submit(
                ModelState(1, 1, {k: v.copy() for k, v in ms.tensors.items()}, ms.meta)))
            writer.wait()
            writer.close()
            shutil.rmtree(sd)
            rec("torch_save_s", lambda: torch_save(tp, ms))
            rec("torch_load_s", lambda: torch.load(tp, weights_only=True))
            os.remove(tp)
        r = {"params": n, "MB": round(mb, 1), "repeats": repeats}
        r.update({k: float(np.median(v)) for k, v in times.items()})
        if gzip:
            gp = os.path.join(d, "gzip.h5")
            r["gzip_save_s"], size = timed(lambda: gzip_write(gp, ms))
            r["gzip_ratio"] = round(size / nbytes, 3)
        return r
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1e6,25e6,100e6", help="parameter counts, comma-separated")
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="where to write (cleaned up)")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--repeats", type=int, default=3, help="runs per measurement (median shown)")
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    rows = [bench_size(n, args.dir, (i == 0), args.repeats) for i, n in enumerate(sizes)]

    from rich.console import Console
    from rich.table import Table
    t = Table(title=f"checkpoint speed, median of {args.repeats} (model + Adam state = 12 bytes/param; "
                    f"dir {args.dir})")
    for c in ("params", "MB", "raw write", "hdf5 save", "hdf5/raw", "training stall", "torch.save",
              "hdf5/torch", "hdf5 load", "torch.load"):
        t.add_column(c, justify="right")
    rate = lambda r, k: r["MB"] / r[k]  # noqa: E731
    verdict = []
    for r in rows:
        ratio = r["raw_write_s"] / r["hdf5_save_s"]
        verdict.append(f"{r['params']:.0e}: {'met' if ratio >= 0.5 else 'NOT met'} "
                       f"({r['hdf5_save_s'] * 1e3:.0f} ms vs {r['raw_write_s'] * 1e3:.0f} ms)")
        t.add_row(f"{r['params']:.0e}", f"{r['MB']:.0f}", f"{rate(r, 'raw_write_s'):.0f} MB/s",
                  f"{rate(r, 'hdf5_save_s'):.0f} MB/s", f"{ratio:.0%}", f"{r['stall_s'] * 1e3:.0f} ms",
                  f"{rate(r, 'torch_save_s'):.0f} MB/s", f"{r['torch_save_s'] / r['hdf5_save_s']:.2f}x",
                  f"{rate(r, 'hdf5_load_s'):.0f} MB/s", f"{rate(r, 'torch_load_s'):.0f} MB/s")
    con = Console(width=150)
    con.print(t)
    g = rows[0]
    if "gzip_save_s" in g:
        con.print(f"gzip-1+shuffle chunked HDF5 at {g['params']:.0e} params: "
                  f"{rate(g, 'gzip_save_s'):.0f} MB/s, "
                  f"size {g['gzip_ratio']:.0%} of raw (vs {rate(g, 'hdf5_save_s'):.0f} MB/s uncompressed)")
    con.print("target hdf5 save >= 50% of raw write: " + "; ".join(verdict))
    con.print("(training stall = copy to host memory + hand-over to the background writer: what a "
              "trainer waits for; the write runs on the writer thread)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
