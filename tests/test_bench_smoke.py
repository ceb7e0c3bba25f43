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
    data, _ = bench(tmp_path, "utilization.py", "--groups", "4", "--trials", "30", "--time-scales", "1,0.01",
                    "--methods", "random,hyperband,rl")
    rows = {(r["method"], r["time_scale"]): r for r in data["rows"]}
    assert set(rows) == {(m, s) for m in ("random", "hyperband", "rl") for s in (1.0, 0.01)}
    assert all(0 < r["utilization"] <= 1 and 0 < r["utilization_steady"] <= 1 + 1e-9 and r["trials"] == 30
               for r in rows.values())
    assert rows[("random", 1.0)]["utilization_steady"] > rows[("random", 1.0)]["utilization"]  # the drain
    assert rows[("rl", 1.0)]["options"]["replicas"] * rows[("rl", 1.0)]["options"]["samples_per_replica"] >= 4
    # the scaled run's trials are 100x shorter (same seed and strategy: the same trials; the recorded
    # times also hold the driver's own latency, charged to the clock)
    full = rows[("random", 1.0)]["mean_trial_s"]
    assert rows[("random", 0.01)]["mean_trial_s"] == pytest.approx(full / 100, rel=1e-3)


def test_store_scale(tmp_path):
    data, out = bench(tmp_path, "store_scale.py", "--sizes", "200,400", "--saves", "3",
                      "--baseline-saves", "1", "--resume-trials", "60", "--resume-strategies", "random,bohb")
    assert [r["n"] for r in data["rows"]] == [200, 400]
    for r in data["rows"]:
        assert r["incremental"]["save_mean_s"] > 0 and r["full_rewrite"]["save_mean_s"] > 0
    assert [r["trials"] for r in data["resume"]] == [60, 60]
    assert "full rewrite" in out and "resume" in out


@pytest.mark.mpi
def test_training(tmp_path):
    data, _ = bench(tmp_path, "training.py", "--epochs", "1", "--repeats", "1", "--backends", "torch")
    names = [r["variant"] for r in data["rows"]]
    assert names[:2] == ["bare (1 rank)", "nasrun (1 rank)"] and "torch" in names[2]
    assert all(r.get("samples_per_s", 0) > 0 for r in data["rows"])


def test_checkpoint(tmp_path):
    data, out = bench(tmp_path, "checkpoint.py", "--sizes", "1e4", "--repeats", "1")
    assert data[0]["params"] == 10000 and data[0]["hdf5_save_s"] > 0 and data[0]["stall_s"] >= 0


@pytest.mark.mpi
def test_checkpoint_share(tmp_path):
    data, _ = bench(tmp_path, "checkpoint_share.py", "--trials", "2", "--epochs", "1")
    assert data["trials"] == 2 and data["saves"] >= 2 and 0 < data["share"] < 1


def test_rl_controller(tmp_path):
    data, out = bench(tmp_path, "rl_controller.py", "--seeds", "2", "--trials", "160",
                      "--methods", "random,rl,rl/no-dedupe")
    rows = {r["method"]: r for r in data["rows"]}
    assert set(rows) == {"random", "rl", "rl/no-dedupe"}
    assert set(rows["rl"]["at"]) == {"50", "150", "160"} and len(rows["rl"]["at"]["160"]) == 2
    assert set(rows["rl"]["p_vs_random"]) == {"50", "150", "160"}
    # with dedupe (the table's default) no trial repeats a canonical architecture
    assert rows["rl"]["distinct100"] == 100 and rows["rl/no-dedupe"]["distinct100"] <= 100
    assert rows["rl"]["ask_tell_us"] > 0 and "p>random" in out


def test_fidelity_work(tmp_path):
    data, out = bench(tmp_path, "fidelity_work.py", "--seeds", "2", "--groups", "1,2", "--evaluations", "3,6",
                      "--methods", "asha,hyperband")
    rows = {(r["groups"], r["evaluations"], r["method"]): r for r in data["rows"]}
    assert set(rows) == {(g, e, m) for g in (1, 2) for e in (3, 6) for m in ("random", "asha", "hyperband")}
    for (_, e, m), r in rows.items():
        assert r["epochs"] == 200.0 * e and r["seeds"] == 2 and 0 < r["utilization"] <= 1
        assert (r["p_better"] is None) == (m == "random")
    assert rows[(1, 3, "random")]["trials"] == 3  # one group: 3 full evaluations' epochs are 3 trials
    assert rows[(1, 6, "asha")]["trials"] > 6  # the same work on more, shorter trials
    assert "asha >= random at every budget" in out


def test_strategies(tmp_path):
    data, out = bench(tmp_path, "strategies.py", "--quick", "--procs", "2", timeout=600)
    methods = {"random", "evolution", "rl", "hyperband", "asha", "bohb", "gp", "smac", "tpe", "local_search"}
    assert data["checkpoints"] == [3, 9, 30]
    assert {(r["method"], r["groups"]) for r in data["nb201"]} == {(m, g) for m in methods for g in (1, 8)}
    for r in data["nb201"]:
        assert r["seeds"] == 2 and r["ask_tell_us"] > 0 and 0 <= r["reached"] <= 2
        assert 10.0 < r["valid_30"][0] <= 100.0  # every method has a full-budget result by 30
    fn = {r["method"]: r for r in data["functions"] if "branin_regret" in r}
    assert set(fn) == methods - {"hyperband", "asha", "bohb"}
    assert all(r["branin_regret"] >= 0 and r["hartmann6_regret"] >= 0 for r in fn.values())
    asy = {r["method"]: r for r in data["functions_async"]}
    assert set(asy) == set(fn) and all(r["branin_regret"] >= 0 for r in asy.values())
    assert [set(r) - {"method"} for r in data["ask_tell_us"]] == [{"20", "40"}] * 6
    assert "Branin" in out and "Chain space" in out and "8 groups" in out and "wall time" in out


def test_stoppers_digits_cost(tmp_path):
    """The curve stopper's rank-0 cost on the recorded digits curves: the same reports are timed
    both ways (no timing check)."""
    data, out = bench(tmp_path, "stoppers_digits.py", "cost")
    lazy, full = data["should_stop"], data["all_families_every_report"]
    assert lazy["reports"] == full["reports"] > 3 * 40 * 3  # 3 runs of 40 trials, >= 3 reports each
    assert all(v["max_ms"] >= v["p95_ms"] >= 0 for v in (lazy, full))
    assert "all 6 families fitted every report" in out
