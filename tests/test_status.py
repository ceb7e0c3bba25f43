"""nasrun status: what it reports, and clear exit-2 messages for bad input."""
import json
import os

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from nasrun.cli import main
from nasrun.store import open_store
from nasrun.store.sample import sample_records, write_experiment


def run(*args):
    return CliRunner().invoke(main, ["status", *args])


def write_sample(directory, spec_text=None, generations=2, n_trials=8, **kw):
    """Sample trials (every status; step 2 of the metric values) as job 123 then 124 ran them,
    committed twice (generation 1 when the run began, 2 at its end)."""
    kw = {"runtime": {"elapsed_seconds": 25.0}, "jobs": ["123", "124"], **kw}
    if spec_text is not None:
        kw["spec_text"] = spec_text
    write_experiment(open_store(str(directory), generations), sample_records(n_trials, step=2), **kw)


@pytest.fixture
def run_dir(tmp_path):
    write_sample(tmp_path)
    return tmp_path


def test_json_report(run_dir):
    r = run(str(run_dir), "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["experiment"] == "sample" and rep["generation"] == 2 and rep["max_trials"] == 12
    assert rep["trials"] == {"total": 8, "done": 2, "running": 2, "queued": 2, "failed": 2}
    # trial 0 (0.502) was trained on the full budget, trial 4 (0.542) on budget 3 only: a result
    # at the highest budget outranks any lower rung (nasrun.view)
    assert [(b["trial_id"], b["budget"]) for b in rep["best"]] == [(0, None), (4, 3)]
    assert rep["best"][1]["config"] == {"op": "conv3x3", "lr": 0.01, "layers": 4}
    assert rep["best"][0]["valid_accuracy"] == pytest.approx(0.502)
    assert [f["trial_id"] for f in rep["failures"]] == [5, 1]
    assert rep["failures"][0]["error"] == "RuntimeError: CUDA out of memory (trial 5)"
    assert rep["jobs"] == ["123", "124"]
    assert rep["elapsed_seconds"] == 25.0 and rep["warnings"] == []


def test_min_mode_ranks_lowest_first(tmp_path):
    spec = "experiment: {name: m}\nobjective: {metric: valid_accuracy, mode: min}\n"
    write_sample(tmp_path, spec, n_trials=16)
    rep = json.loads(run(str(tmp_path / "experiment.h5"), "--json").output)
    # done: 0 and 12 on the full budget (0.502, 0.622), 8 on budget 9, 4 on budget 3: the lowest
    # value first within a budget level, higher levels first
    assert [b["trial_id"] for b in rep["best"]] == [0, 12, 8, 4] and rep["max_trials"] == 20
    write_sample(tmp_path / "max", n_trials=16)
    rep = json.loads(run(str(tmp_path / "max"), "--json").output)
    assert [b["trial_id"] for b in rep["best"]] == [12, 0, 8, 4]


def test_table_output(run_dir):
    r = run(str(run_dir))
    assert r.exit_code == 0, r.output
    out = r.output
    assert "4 of 12 finished (2 done, 2 failed), 2 running, 2 queued" in out
    assert "best trials" in out and "0.54" in out and "conv3x3" in out
    assert "CUDA out of memory (trial 5)" in out and "Traceback" not in out
    assert "job chain: 123, 124" in out


def test_fallback_is_reported(run_dir):
    before = json.loads(run(str(run_dir), "--json").output)
    os.truncate(run_dir / "experiment.h5", 100)
    r = run(str(run_dir), "--json")
    assert r.exit_code == 0
    rep = json.loads(r.output)
    assert rep["generation"] == 1 and rep["file"].endswith("experiment.h5.1")
    assert "experiment.h5:" in rep["warnings"][0]
    assert "warning:" in run(str(run_dir)).output
    # generation 1 was committed before any trial; the journal that continues it still holds
    # every event since, so the older generation loses nothing
    assert rep["trials"] == before["trials"] and rep["best"] == before["best"]
    assert rep["jobs"] == ["123", "124"] and rep["failures"] == before["failures"]


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
    ("flipped-segment", "checksum mismatch"),
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
        write_sample(tmp_path, generations=1)  # one generation: nothing to fall back to
        victim = target
        if case == "flipped-segment":  # the finished trials live in segment files
            with h5py.File(target, "r") as f:
                seg = json.loads(f["segments"].asstr()[()])[0]["file"]
            victim = tmp_path / "experiment.segments" / seg
        if case == "cut":
            os.truncate(target, os.path.getsize(target) // 3)
        else:
            with h5py.File(victim, "r") as f:
                off = f["live/metric" if victim == target else "trials/metric"].id.get_offset()
            with open(victim, "r+b") as fh:
                fh.seek(off)
                fh.write(b"\x01\x02\x03\x04")
    r = CliRunner().invoke(main, ["status", str(target)])
    assert r.exit_code == 2
    assert message in r.output and str(target) in r.output
    assert "Traceback" not in r.output and isinstance(r.exception, SystemExit)
