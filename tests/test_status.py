"""nasrun status: what it reports, and clear exit-2 messages for bad input."""
import json
import os

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from nasrun.cli import main
from nasrun.store import open_store
from nasrun.store.sample import sample_snapshot


def run(*args):
    return CliRunner().invoke(main, ["status", *args])


@pytest.fixture
def run_dir(tmp_path):
    store = open_store(str(tmp_path))
    store.save(sample_snapshot(1))
    store.save(sample_snapshot(2))
    return tmp_path


def test_json_report(run_dir):
    r = run(str(run_dir), "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["experiment"] == "sample" and rep["generation"] == 2 and rep["max_trials"] == 12
    assert rep["trials"] == {"total": 8, "done": 2, "running": 2, "queued": 2, "failed": 2}
    assert [b["trial_id"] for b in rep["best"]] == [4, 0]  # valid_accuracy 0.54 > 0.50, mode max
    assert rep["best"][0]["config"] == {"op": "conv3x3", "lr": 0.01, "layers": 4}
    assert [f["trial_id"] for f in rep["failures"]] == [5, 1]
    assert rep["failures"][0]["error"] == "RuntimeError: CUDA out of memory (trial 5)"
    assert [j["job_id"] for j in rep["jobs"]] == ["123", "124"]
    assert rep["elapsed_seconds"] == 25.0 and rep["warnings"] == []


def test_min_mode_ranks_lowest_first(tmp_path):
    spec = "experiment: {name: m}\nobjective: {metric: valid_accuracy, mode: min}\n"
    open_store(str(tmp_path)).save(sample_snapshot(1, spec_text=spec))
    rep = json.loads(run(str(tmp_path / "experiment.h5"), "--json").output)
    assert [b["trial_id"] for b in rep["best"]] == [0, 4] and rep["max_trials"] == 20


def test_table_output(run_dir):
    r = run(str(run_dir))
    assert r.exit_code == 0, r.output
    out = r.output
    assert "4 of 12 finished (2 done, 2 failed), 2 running, 2 queued" in out
    assert "best trials" in out and "0.54" in out and "conv3x3" in out
    assert "CUDA out of memory (trial 5)" in out and "Traceback" not in out
    assert "job chain" in out and "124" in out


def test_fallback_is_reported(run_dir):
    os.truncate(run_dir / "experiment.h5", 100)
    r = run(str(run_dir), "--json")
    assert r.exit_code == 0
    rep = json.loads(r.output)
    assert rep["generation"] == 1 and rep["file"].endswith("experiment.h5.1")
    assert "experiment.h5:" in rep["warnings"][0]
    assert "warning:" in run(str(run_dir)).output


def make_foreign(p):
    with h5py.File(p, "w") as f:
        f["x"] = np.arange(3)


@pytest.mark.parametrize("case,message", [
    ("missing", "no such file or directory"),
    ("empty-dir", "no nasrun checkpoint here"),
    ("text", "not an HDF5 file"),
    ("foreign", "not a nasrun checkpoint"),
    ("cut", "unreadable"),
    ("flipped", "checksum mismatch"),
])
def test_bad_input_is_exit_2_without_traceback(tmp_path, case, message):
    target = tmp_path / "experiment.h5"
    if case == "missing":
        target = tmp_path / "nope"
    elif case == "empty-dir":
        target = tmp_path
    elif case == "text":
        target.write_text("hello\n")
    elif case == "foreign":
        make_foreign(target)
    else:
        open_store(str(tmp_path)).save(sample_snapshot(1))
        if case == "cut":
            os.truncate(target, os.path.getsize(target) // 3)
        else:
            with h5py.File(target, "r") as f:
                off = f["trials/metric"].id.get_offset()
            with open(target, "r+b") as fh:
                fh.seek(off)
                fh.write(b"\x01\x02\x03\x04")
    r = CliRunner().invoke(main, ["status", str(target)])
    assert r.exit_code == 2
    assert message in r.output and str(target) in r.output
    assert "Traceback" not in r.output and isinstance(r.exception, SystemExit)
