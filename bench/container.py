"""The embedded default search (configs/default.yaml) inside the nasrun image against outside it.

The same spec under the host's ``mpirun -np 3``: every rank as the host's ``nasrun`` (this
checkout's venv), or every rank as ``ch-run --set-env IMAGE -- nasrun`` (the image that
containers/build.sh builds, SquashFS), interleaved, ``--repeats`` times each. Also: the time of
``containers/build.sh`` on its cache (warm) and the image's size. The cold build time is what
build.sh prints when its cache is empty (see containers/README.md).

    python bench/container.py [--trials 20] [--epochs 10] [--repeats 1] [--image SQFS] [--json out.json]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import yaml
from _table import ROOT, mpi_env, table, write_json


def build() -> tuple:
    t = time.perf_counter()
    p = subprocess.run(["bash", str(ROOT / "containers" / "build.sh")], capture_output=True, text=True,
                       check=True)
    return p.stdout.strip().splitlines()[-1], time.perf_counter() - t


def size(path: str) -> int:
    return int(subprocess.run(["du", "-sb", path], capture_output=True, text=True, check=True)
               .stdout.split()[0])


def run(cmd: list, env: dict, cwd: str) -> float:
    t = time.perf_counter()
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=None, help="budget.max_trials (default: the spec's)")
    ap.add_argument("--epochs", type=int, default=None, help="objective.epochs (default: the spec's)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--image", default=None, help="this SquashFS image instead of build.sh's")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    image, warm = (a.image, None) if a.image else build()
    with open(ROOT / "configs" / "default.yaml") as f:
        spec = yaml.safe_load(f)
    if a.trials:
        spec["budget"]["max_trials"] = a.trials
    if a.epochs:
        spec["objective"]["epochs"] = a.epochs
    env = mpi_env(USER=os.environ.get("USER") or "root")
    mpirun = ["mpirun", "--oversubscribe", "-np", "3"]
    times: dict = {"host": [], "container": []}
    with tempfile.TemporaryDirectory(prefix="nasrun-bench-container-", dir="/tmp") as tmp:
        for i in range(a.repeats):
            for where in ("host", "container"):
                d = os.path.join(tmp, f"{where}-{i}")
                os.makedirs(d)
                spec["experiment"]["output_dir"] = os.path.join(d, "run")
                with open(os.path.join(d, "spec.yaml"), "w") as f:
                    yaml.safe_dump(spec, f)
                cmd = ([sys.executable, "-m", "nasrun"] if where == "host"
                       else ["ch-run", "--set-env", f"--cd={d}", image, "--", "nasrun"])  # /tmp: bound
                times[where].append(run(mpirun + cmd + ["run", "spec.yaml"], env, d))
    host, cont = min(times["host"]), min(times["container"])
    print(table(f"configs/default.yaml, mpirun -np 3, {spec['budget']['max_trials']} trials, "
                f"{spec['objective']['epochs']} epochs (best of {a.repeats}; load {os.getloadavg()[0]:.1f})",
                ["where", "wall s", "ratio to host"],
                [["host (this checkout's venv)", f"{host:.1f}", "1.00"],
                 ["container (ch-run, SquashFS)", f"{cont:.1f}", f"{cont / host:.2f}"]]))
    directory = os.path.join(os.path.dirname(image), "nasrun")
    print(table("image", ["what", "value"],
                [["SquashFS file", f"{size(image) / 2**20:.0f} MiB"],
                 ["directory image", f"{size(directory) / 2**20:.0f} MiB"],
                 ["build.sh on its cache (warm)", "-" if warm is None else f"{warm:.1f} s"]]))
    write_json(a.json, {"image": image, "host_s": times["host"], "container_s": times["container"],
                        "ratio": cont / host, "warm_build_s": warm, "sqfs_bytes": size(image)})


if __name__ == "__main__":
    main()
