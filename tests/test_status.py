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
    write_experiment(open_store(str(directory), generations), sample_records(n_trials, step=2),
                     **kw)


@pytest.fixture
def run_dir(tmp_path):
    write_sample(tmp_path)
    return tmp_path


def test_json_report(run_dir):
    r = run(str(run_dir), "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["experiment"] == "sample" and rep["generation"] == 2 and rep["max_trials"] == 12
    assert rep["trials"] == {"total": 8, "done": 2, "running": 2, "queued": 2, "failed": 2,
                             "stopped": 0}
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


def big_experiment(n=20_000):
    """``n`` finished trials (every 7th failed; a third trained to budget 3 only; ``params`` for
    a constraint, which the most accurate trial violates), then 3 running and 2 queued, over
    8 groups."""
    from nasrun.store.base import DONE, FAILED, QUEUED, RUNNING, TrialRecord
    from nasrun.trial import Outcome, Suggestion
    rng = np.random.default_rng(7)
    acc, params = rng.uniform(0.1, 0.95, n + 5), rng.uniform(1e4, 1e6, n + 5)
    acc[12_345], params[12_345] = 0.99, 9e5  # the most accurate trial violates the constraint
    out = []
    for i in range(n + 5):
        status = DONE if i % 7 else FAILED
        if i >= n:
            status = RUNNING if i < n + 3 else QUEUED
        sug = Suggestion(i, {"op": ["conv", "skip"][i % 2], "w": int(params[i] // 1000)},
                         budget=3.0 if i % 3 == 1 else None)
        outcome = (Outcome(i, DONE, {"valid_accuracy": float(acc[i]), "params": float(params[i])})
                   if status == DONE else
                   Outcome.failure(i, f"RuntimeError: trial {i} diverged\nTraceback...")
                   if status == FAILED else None)
        live = status in (RUNNING, QUEUED)
        out.append(TrialRecord(sug, status, outcome, None if status == QUEUED else i % 8,
                               None if status == QUEUED else 1000.0 + 10 * i,
                               None if live else 1000.0 + 10 * i + 9, None if live else "5"))
    return out


def test_status_of_a_big_experiment_reads_the_right_numbers(tmp_path):
    from nasrun.commands.status import experiment_status
    spec = ("experiment: {name: big}\nobjective: {metric: valid_accuracy, mode: max, "
            "constraints: [{metric: params, max: 5.0e5}]}\nbudget: {max_trials: 30000}\n")
    records = big_experiment()
    write_experiment(str(tmp_path), records, spec, runtime={"elapsed_seconds": 2e5}, jobs=["5"],
                     commit_every=2000)
    from nasrun.report import open_experiment
    st = open_experiment(str(tmp_path)).state  # status reads these blocks column-wise
    assert len(st.table) == 20_000 and len(st.table.blocks) > 1 and not st.fresh
    rep = experiment_status(str(tmp_path), top=5)
    n_failed = len(range(0, 20_000, 7))
    assert rep["trials"] == {"total": 20_005, "done": 20_000 - n_failed, "running": 3, "queued": 2,
                             "failed": n_failed, "stopped": 0}
    # best, computed here from the records: full budget first, feasible only, then accuracy
    ok = [r for r in records if r.status == "done" and r.outcome.metrics["params"] <= 5e5]
    expect = sorted(ok, key=lambda r: (r.suggestion.budget is None,
                                       r.outcome.metrics["valid_accuracy"], -r.trial_id),
                    reverse=True)[:5]
    assert [b["trial_id"] for b in rep["best"]] == [r.trial_id for r in expect]
    assert rep["best"][0]["valid_accuracy"] == expect[0].outcome.metrics["valid_accuracy"]
    assert rep["best"][0]["config"] == expect[0].suggestion.config
    assert rep["best"][0]["budget"] is None
    by_metric = max((r for r in records if r.status == "done"),
                    key=lambda r: r.outcome.metrics["valid_accuracy"])
    assert by_metric.trial_id == 12_345 and 12_345 not in [b["trial_id"] for b in rep["best"]]
    last_failed = [i for i in range(19_999, -1, -1) if i % 7 == 0][:5]
    assert [f["trial_id"] for f in rep["failures"]] == last_failed
    assert rep["failures"][0]["error"] == f"RuntimeError: trial {last_failed[0]} diverged"
    assert rep["jobs"] == ["5"] and rep["elapsed_seconds"] == 2e5
    assert rep["progress"]["fraction"] == pytest.approx(20_000 / 30_000)
    groups = {g["group"]: g for g in rep["utilization"]["groups"]}
    assert sorted(groups) == list(range(8))
    assert sum(g["trials"] for g in groups.values()) == 20_003  # the queued ones have no group
    assert sum(g["failed"] for g in groups.values()) == n_failed


def test_many_groups_are_summarized_with_the_least_busy_listed(tmp_path):
    """1,000 groups: the text report gives mean/min/median/max and the least busy groups, not
    1,000 lines; --json still lists every group."""
    from nasrun.store.base import DONE, TrialRecord
    from nasrun.trial import Outcome, Suggestion
    records = []
    for i in range(3000):  # group g runs 3 trials of 10 s; groups 7 and 500 only 1 (idle 2/3)
        g = i % 1000
        if g in (7, 500) and i >= 1000:
            continue
        start = 100.0 + 10 * (i // 1000)
        records.append(TrialRecord(Suggestion(i, {"x": i}), DONE, Outcome(i, DONE, {"valid_accuracy": 0.5}),
                                   g, start, start + 10, None))
    write_experiment(str(tmp_path), records, "experiment: {name: wide}\n")
    rep = json.loads(run(str(tmp_path), "--json").output)
    assert len(rep["utilization"]["groups"]) == 1000
    r = run(str(tmp_path), "--top", "3")
    assert r.exit_code == 0, r.output
    lines, flat = r.output.splitlines(), " ".join(r.output.split())  # rich wraps at 80 columns
    assert "1000 worker groups: utilization mean 100%, min 33%, median 100%, max 100%; 2996 trials, " \
           "0 failed" in flat
    assert "least busy 3 of 1000 groups" in flat
    rows = [ln.split("│")[1].strip() for ln in lines if ln.startswith("│")][-3:]  # the last table
    assert rows == ["7", "500", "0"]  # the two stragglers first, then the lowest id at 100%
    assert len(lines) < 40  # not one per group
