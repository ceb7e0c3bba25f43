"""Each benchmark runs in a tiny mode and writes JSON with the expected fields (no timing checks)."""
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, mpi_env


def bench(tmp_path, script, *args, timeout=240):
    out = tmp_path / f"{script}.json"
    p = subprocess.run([sys.executable, os.path.join(REPO, "bench", script), *args, "--json", str(out)],
                       env=mpi_env(), capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(out.read_text()), p.stdout


@pytest.mark.mpi
def test_dispatch(tmp_path):
    data, out = bench(tmp_path, "dispatch.py", "--ranks", "2", "--trials", "40", "--hdf5-trials", "5",
                      "--optuna-trials", "10")
    variants = {s["variant"] for s in data["summary"]}
    assert {"random-keep", "evolution-keep", "random-hdf5", "raw mpi4py"} <= variants
    run = data["runs"][0]
    assert run["random-keep"]["trials"] == 40 and run["evolution-keep"]["trials"] == 40
    assert run["random-hdf5"]["saves"] >= 1
    assert "trials/s" in out


def test_utilization(tmp_path):
    data, _ = bench(tmp_path, "utilization.py", "--workers", "4", "--budget-seconds", "3000",
                    "--methods", "random,hyperband,rl")
    rows = {r["method"]: r for r in data["rows"]}
    assert set(rows) == {"random", "hyperband", "rl"}
    assert all(0 < r["utilization"] <= 1 and r["trials"] > 0 for r in rows.values())
    assert rows["rl"]["options"]["replicas"] * rows["rl"]["options"]["samples_per_replica"] >= 4


@pytest.mark.mpi
def test_training(tmp_path):
    data, _ = bench(tmp_path, "training.py", "--epochs", "1", "--repeats", "1", "--backends", "torch")
    names = [r["variant"] for r in data["rows"]]
    assert names[:2] == ["bare (1 rank)", "nasrun (1 rank)"] and "torch" in names[2]
    assert all(r.get("samples_per_s", 0) > 0 for r in data["rows"])


@pytest.mark.mpi
def test_checkpoint_share(tmp_path):
    data, _ = bench(tmp_path, "checkpoint_share.py", "--trials", "2", "--epochs", "1")
    assert data["trials"] == 2 and data["saves"] >= 2 and 0 < data["share"] < 1
