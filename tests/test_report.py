"""nasrun report on experiments written with HDF5Store: files, PNG validity, CSV/JSON against the
HDF5 trials table, leaderboard order, skipped plots and bad input."""
import csv
import json
import math
import struct

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from nasrun.cli import main
from nasrun.errors import UserInputError
from nasrun.report import find_trial, open_experiment
from nasrun.report.synthetic import spec_text, synthetic_run
from nasrun.store.base import DONE, FAILED, QUEUED, TrialRecord
from nasrun.store.sample import sample_records, write_experiment
from nasrun.trial import Outcome, Suggestion

PLOTS = ["best_vs_time.png", "best_vs_trials.png", "trials_vs_time.png", "utilization.png",
         "learning_curves.png", "pareto.png"]


def report(*args):
    return CliRunner().invoke(main, ["report", *map(str, args)])


def png_size(path):
    """(width, height) from the IHDR chunk; fails unless the file is a PNG."""
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def check_png(path):
    import matplotlib.image
    w, h = png_size(path)
    assert w >= 400 and h >= 300, (path, w, h)
    img = matplotlib.image.imread(path)
    assert img.shape[:2] == (h, w) and float(img[..., :3].std()) > 0.05  # not a blank image


def hdf5_trials(run_dir):
    """The trials table read straight from the HDF5 files with plain h5py (not through the
    store), in trial id order: the rows of every segment the main file lists, then ``/live``."""
    cols = {k: [] for k in ("id", "status", "metric", "group")}

    def add(group):
        for k in cols:
            values = group[k][()].tolist()
            cols[k] += [x.decode() if isinstance(x, bytes) else x for x in values]
    with h5py.File(run_dir / "experiment.h5", "r") as f:
        for seg in json.loads(f["segments"].asstr()[()]):
            with h5py.File(run_dir / "experiment.segments" / seg["file"], "r") as g:
                add(g["trials"])
        add(f["live"])
    order = sorted(range(len(cols["id"])), key=lambda i: cols["id"][i])
    return tuple([cols[k][i] for i in order] for k in ("id", "status", "metric", "group"))


def check_csv_matches_hdf5(run_dir, out):
    ids, statuses, metrics, groups = hdf5_trials(run_dir)
    with open(out / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["id"]) for r in rows] == ids
    assert [r["status"] for r in rows] == statuses
    for r, m, g in zip(rows, metrics, groups):
        if math.isnan(m):
            assert r["metric"] == ""
        else:
            assert abs(float(r["metric"]) - m) <= 1e-9
        assert r["group"] == ("" if g < 0 else str(g))
    return rows


@pytest.fixture
def synthetic_dir(tmp_path):
    d = tmp_path / "run"
    run = synthetic_run(60, groups=4, seed=3)
    run.write(str(d))
    return d, run


def test_synthetic_run_full_report(synthetic_dir, tmp_path):
    synthetic_dir, run = synthetic_dir
    out = tmp_path / "out"
    r = report(synthetic_dir, "--out", out, "--top", 7, "--html")
    assert r.exit_code == 0, r.output
    for name in PLOTS:
        check_png(out / name)
        assert str(out / name) in r.output
    assert "wrote 10 files" in r.output and "skipped" not in r.output
    rows = check_csv_matches_hdf5(synthetic_dir, out)
    assert len(rows) == 63 and {r["status"] for r in rows} == {"done", "failed", "running", "queued"}
    by_id = {t.trial_id: t for t in run.trials}  # what was written
    for r in rows:  # every metric is a column; config and errors are faithful
        t = by_id[int(r["id"])]
        assert json.loads(r["config"]) == dict(t.suggestion.config)
        if t.status == DONE:
            assert float(r["metrics.params"]) == t.outcome.metrics["params"]
            assert float(r["metrics.macs"]) == t.outcome.metrics["macs"]
            assert abs(float(r["duration"]) - (t.end - t.start)) < 1e-6
        if t.status == FAILED:
            assert r["error"] == t.outcome.error.split("\n")[0] and "Traceback" not in r["error"]
    doc = json.loads((out / "trials.json").read_text())
    assert doc["metric"] == "valid_accuracy" and doc["mode"] == "max"
    assert [t["id"] for t in doc["trials"]] == [int(r["id"]) for r in rows]
    t54 = next(t for t in doc["trials"] if t["status"] == "done" and t["curve"])
    assert t54["curve"] == [dict(c) for c in by_id[t54["id"]].outcome.curve]
    # leaderboard: the 7 best by valid_accuracy, highest first, read independently from HDF5
    ids, statuses, metrics, _ = hdf5_trials(synthetic_dir)
    expect = sorted((i for i, s, m in zip(ids, statuses, metrics) if s == "done"),
                    key=lambda i: -metrics[ids.index(i)])[:7]
    with open(out / "leaderboard.csv", newline="") as f:
        lb = list(csv.DictReader(f))
    assert [int(r["id"]) for r in lb] == expect and [r["rank"] for r in lb] == list("1234567")
    html = (out / "index.html").read_text()
    for name in PLOTS:
        assert f"src='{name}'" in html
    assert f"<td>{expect[0]}</td>" in html and "trials.csv" in html


def test_min_mode_leaderboard(tmp_path):
    spec = spec_text(metric="valid_loss", mode="min")
    synthetic_run(40, seed=5, spec=spec).write(str(tmp_path))
    r = report(tmp_path, "--top", 5)
    assert r.exit_code == 0, r.output
    exp = open_experiment(str(tmp_path))
    losses = {t.trial_id: t.outcome.metrics["valid_loss"] for t in exp.trials if t.status == DONE}
    expect = sorted(losses, key=losses.get)[:5]
    with open(tmp_path / "report" / "leaderboard.csv", newline="") as f:
        lb = list(csv.DictReader(f))
    assert [int(x["id"]) for x in lb] == expect
    assert [float(x["valid_loss"]) for x in lb] == sorted(float(x["valid_loss"]) for x in lb)
    check_csv_matches_hdf5(tmp_path, tmp_path / "report")  # the metric column is valid_loss here


def test_sample_experiment_report(tmp_path):
    write_experiment(str(tmp_path), sample_records(8, step=1))
    r = report(tmp_path / "experiment.h5")  # the file itself; default --out is beside it
    assert r.exit_code == 0, r.output
    out = tmp_path / "report"
    for name in PLOTS:
        check_png(out / name)
    rows = check_csv_matches_hdf5(tmp_path, out)
    assert rows[1]["error"] == "RuntimeError: CUDA out of memory (trial 1)"
    assert json.loads(rows[0]["info"]) == {"rung": 0, "bracket": [0, 1]}
    assert not (out / "index.html").exists()


def plain_run(n=5, curves=False, sizes=False, statuses=None):
    trials = []
    for i in range(n):
        st = (statuses or [DONE] * n)[i]
        m = {"valid_accuracy": 0.5 + 0.01 * i, **({"params": 1e5 * (i + 1)} if sizes else {})}
        curve = tuple({"epoch": e, "valid_accuracy": 0.1 * e} for e in range(1, 4)) if curves else ()
        out = (Outcome(i, DONE, m, curve) if st == DONE else
               Outcome.failure(i, "ValueError: bad\nTraceback") if st == FAILED else None)
        trials.append(TrialRecord(Suggestion(i, {"x": i}), st, out, None if st == QUEUED else 0,
                                  None if st == QUEUED else 1000.0 + 60 * i,
                                  1050.0 + 60 * i if st in (DONE, FAILED) else None))
    return trials


PLAIN_SPEC = "experiment: {name: plain}\nbudget: {max_trials: 5}\n"


def write_plain(directory, *args, **kw):
    write_experiment(str(directory), plain_run(*args, **kw), PLAIN_SPEC)


def test_plots_without_curves_or_sizes_are_skipped_with_a_note(tmp_path):
    write_plain(tmp_path)
    r = report(tmp_path, "--html")
    assert r.exit_code == 0, r.output
    assert "note: learning_curves.png skipped: no learning curves recorded" in r.output
    assert "note: pareto.png skipped: no model sizes recorded" in r.output
    out = tmp_path / "report"
    assert not (out / "learning_curves.png").exists() and not (out / "pareto.png").exists()
    for name in PLOTS[:4]:
        check_png(out / name)
    assert "pareto.png skipped" in (out / "index.html").read_text()


@pytest.mark.parametrize("case,message", [
    ("missing", "no such file or directory"),
    ("empty-dir", "no nasrun checkpoint here"),
    ("foreign", "not a nasrun checkpoint"),
    ("nothing-finished", "no finished trial yet"),
])
def test_bad_input_exit_2(tmp_path, case, message):
    target = tmp_path
    if case == "missing":
        target = tmp_path / "nope"
    elif case == "foreign":
        target = tmp_path / "experiment.h5"
        with h5py.File(target, "w") as f:
            f["x"] = np.arange(3)
    elif case == "nothing-finished":
        write_plain(tmp_path, 3, statuses=[FAILED, QUEUED, QUEUED])
    r = report(target)
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output
    assert isinstance(r.exception, SystemExit)
    assert not (tmp_path / "report").exists()
    if case == "nothing-finished":
        assert "1 failed" in r.output and "2 queued" in r.output


def test_bad_top_and_unknown_trial(tmp_path):
    write_plain(tmp_path)
    r = report(tmp_path, "--top", 0)
    assert r.exit_code == 2 and "--top must be at least 1" in r.output
    exp = open_experiment(str(tmp_path))
    assert find_trial(exp, 3).trial_id == 3
    with pytest.raises(UserInputError, match=r"no trial 42 in this experiment \(its trials are 0\.\.4\)"):
        find_trial(exp, 42)
