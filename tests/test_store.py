"""HDF5 store: exact round trips, incremental commits, merges, the journal, generations, damage."""
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import warnings

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from test_store_codec import nested

from nasrun.errors import CheckpointError
from nasrun.store import CheckpointWarning, HDF5Store, open_store
from nasrun.store.events import Asked, Finished, Started, StateDropped, StateSaved
from nasrun.store.lock import LockedError
from nasrun.store.sample import SPEC, difference, sample_records, sample_state, write_experiment
from nasrun.store.states import StateError, read_state_file
from nasrun.trial import Outcome, Suggestion


def records_of(path):
    got = open_store(str(path)).load()
    return got, got.state.all_records()


def test_round_trip_of_every_kind_of_trial_and_state(tmp_path):
    recs = sample_records(12)
    assert {t.status for t in recs} == {"queued", "running", "done", "failed"}
    write_experiment(str(tmp_path), recs, jobs=["123"], runtime={"step": 4},
                     states={2: sample_state(2), 6: sample_state(6, epoch=3)})
    got, back = records_of(tmp_path)
    assert len(back) == len(recs)
    for a, b in zip(recs, back):
        b_cmp = type(b)(b.suggestion, b.status, b.outcome, b.group, b.start, b.end, b.job_id)
        a_cmp = type(a)(a.suggestion, a.status, a.outcome, a.group, a.start, a.end, a.job_id)
        assert difference(a_cmp, b_cmp) is None, (a.trial_id, difference(a_cmp, b_cmp))
    assert got.runtime == {"step": 4} and got.state.jobs == ["123"]
    assert sorted(got.state.refs) == [2, 6]
    ms = open_store(str(tmp_path)).states.read(got.state.refs[6][0])
    assert difference(sample_state(6, epoch=3), ms) is None
    assert {t.dtype for t in ms.tensors.values()} >= {np.dtype("float32"), np.dtype("float64"),
                                                      np.dtype("int64")}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(state=nested)
def test_strategy_and_runtime_state_round_trip(tmp_path, state):
    d = tmp_path / "h"
    shutil.rmtree(d, ignore_errors=True)
    store = open_store(str(d))
    store.begin(SPEC, "t", None)
    store.commit({"r": [state]}, (7, {"s": state}))
    store.close()
    got = open_store(str(d)).load()
    assert got.strategy_seq == 7
    assert difference({"s": state}, got.strategy_state) is None
    assert difference({"r": [state]}, got.runtime) is None


def test_no_experiment_is_none_and_directory_means_experiment_h5(tmp_path):
    assert open_store(str(tmp_path)).load() is None
    assert open_store(str(tmp_path / "new")).path == str(tmp_path / "new" / "experiment.h5")
    write_experiment(str(tmp_path), sample_records(4))
    assert os.path.exists(tmp_path / "experiment.h5")


def plain_h5py_trials(directory):
    """The README's snippet: the whole trials table with plain h5py and json."""
    main = h5py.File(os.path.join(directory, "experiment.h5"), "r")
    blocks = [h5py.File(os.path.join(directory, "experiment.segments", s["file"]), "r")["trials"]
              for s in json.loads(main["segments"][()])] + [main["live"]]
    rows = []
    for b in blocks:
        names = json.loads(b["metric_names"][()])
        configs = json.loads(b["config"][()])
        for i, tid in enumerate(b["id"][()]):
            rows.append({"id": int(tid), "status": b["status"][i].decode(), "config": configs[i],
                         "metrics": {k: v for k, v in zip(names, b["metrics"][i]) if v == v}})
    return sorted(rows, key=lambda r: r["id"])


def test_the_trials_table_is_readable_with_plain_h5py(tmp_path):
    recs = sample_records(40)
    write_experiment(str(tmp_path), recs, commit_every=4)
    rows = plain_h5py_trials(tmp_path)
    assert [r["id"] for r in rows] == [t.trial_id for t in recs]
    for r, t in zip(rows, recs):
        assert r["status"] == t.status and r["config"] == dict(t.suggestion.config)
        assert r["metrics"] == (dict(t.outcome.metrics) if t.outcome else {})
    with h5py.File(tmp_path / "experiment.h5", "r") as f:
        assert f.attrs["format"] == "nasrun-experiment" and f.attrs["spec"] == SPEC
        assert f.attrs["metric"] == "valid_accuracy"


def test_a_commit_writes_what_changed_not_the_history(tmp_path):
    store = open_store(str(tmp_path))
    store.begin(SPEC, "t", None)
    store.commit({}, (-1, {}))
    seq = 0

    def finish(tid):
        nonlocal seq
        store.log(Asked(seq, Suggestion(tid, {"x": tid})))
        store.log(Started(tid, 0, float(tid)))
        store.log(Finished(seq + 1, Outcome(tid, "done", {"valid_accuracy": tid / 1e4}), tid + 1.0))
        seq += 2

    for tid in range(1000):
        finish(tid)
    store.commit({})
    size_big = os.path.getsize(tmp_path / "experiment.h5")
    for tid in range(1000, 1010):
        finish(tid)
    before = set(os.listdir(tmp_path / "experiment.segments"))
    store.commit({})
    new = set(os.listdir(tmp_path / "experiment.segments")) - before
    assert len(new) == 1
    with h5py.File(tmp_path / "experiment.segments" / new.pop(), "r") as f:
        assert f.attrs["rows"] == 10 and list(f["trials/id"][()]) == list(range(1000, 1010))
    # the main file holds no finished row: its size does not grow with the history
    assert os.path.getsize(tmp_path / "experiment.h5") <= size_big + 2048
    store.close()
    got = open_store(str(tmp_path)).load()
    assert got.state.finished == 1010 and len(got.state.table) == 1010


def test_segments_merge_by_size_tier_and_keep_every_row_in_order(tmp_path):
    store = HDF5Store(str(tmp_path / "experiment.h5"), fanin=2)
    store.begin(SPEC, "t", None)
    store.commit({}, (-1, {}))
    seq = 0
    for tid in range(64):
        store.log(Asked(seq, Suggestion(tid, {"x": tid})))
        store.log(Finished(seq + 1, Outcome(tid, "done", {"valid_accuracy": float(tid)}), 1.0))
        seq += 2
        store.commit({})
    store.close()
    got = open_store(str(tmp_path)).load()
    assert [int(i) for i in got.state.table.column("id")] == list(range(64))
    with h5py.File(tmp_path / "experiment.h5", "r") as f:
        segs = json.loads(f["segments"][()])
    assert len(segs) <= 7 and [s["level"] for s in segs] == sorted((s["level"] for s in segs),
                                                                    reverse=True)
    assert store.merges > 0


def test_events_after_the_last_commit_come_back_from_the_journal(tmp_path):
    """What a kill -9 between commits leaves: the journal holds every logged event."""
    store = open_store(str(tmp_path))
    store.begin(SPEC, "t", None)
    store.commit({}, (-1, {}))
    store.log(Asked(0, Suggestion(0, {"x": 1})))
    store.log(Started(0, 3, 5.0))
    ref = store.states.write(sample_state(0))
    store.log(StateSaved(ref))
    store.log(Asked(1, Suggestion(1, {"x": 2})))
    store.log(Finished(2, Outcome(1, "done", {"valid_accuracy": 0.9}), 9.0, "77"))
    store.log(StateDropped(ref))
    store.log(StateSaved(ref))
    # no commit, no close: as if killed
    got = open_store(str(tmp_path)).load()
    st = got.state
    assert set(st.live) == {0} and st.live[0].group == 3 and st.live[0].attempts == 1
    assert st.finished == 1 and st.fresh[0].job_id == "77" and st.refs[0] == [ref]
    assert st.next_seq == 3
    store.close()


def test_a_torn_last_record_is_ignored_and_a_damaged_one_reported(tmp_path):
    store = open_store(str(tmp_path))
    store.begin(SPEC, "t", None)
    store.commit({}, (-1, {}))
    for tid in range(3):
        store.log(Asked(tid, Suggestion(tid, {"x": tid})))
    store.close()
    journal = sorted((tmp_path / "experiment.journal").iterdir())[-1]
    data = journal.read_bytes()
    journal.write_bytes(data + b'0123abcd {"e": "ask", "se')  # a record being written
    with warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointWarning)
        assert set(open_store(str(tmp_path)).load().state.live) == {0, 1, 2}
    lines = data.split(b"\n")
    lines[1] = lines[1][:-3] + b"999"  # flip the second record's content
    journal.write_bytes(b"\n".join(lines))
    with pytest.warns(CheckpointWarning, match="checksum mismatch"):
        got = open_store(str(tmp_path)).load()
    assert set(got.state.live) == {0}


def test_generations_rotate_and_only_needed_files_are_kept(tmp_path):
    store = HDF5Store(str(tmp_path / "experiment.h5"), generations=3)
    store.begin(SPEC, "t", None)
    for step in range(6):
        store.commit({"step": step}, (-1, {"step": step}))
    store.close()
    names = sorted(n for n in os.listdir(tmp_path) if n.startswith("experiment.h5"))
    assert names == ["experiment.h5", "experiment.h5.1", "experiment.h5.2"]
    assert [HDF5Store._generation_of(str(tmp_path / n)) for n in names] == [6, 5, 4]
    journals = sorted(os.listdir(tmp_path / "experiment.journal"))
    assert journals == ["0000000004.log", "0000000005.log", "0000000006.log"]
    strategies = sorted(os.listdir(tmp_path / "experiment.segments"))
    assert strategies == ["strategy-0000000004.h5", "strategy-0000000005.h5",
                          "strategy-0000000006.h5"]
    assert open_store(str(tmp_path)).load().runtime == {"step": 5}


def flip(path, offset, n=4):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(n)
        f.seek(offset)
        f.write(bytes(x ^ 0xFF for x in b))


def data_offset(path, dataset):
    with h5py.File(path, "r") as f:
        return f[dataset].id.get_offset()


def damage(p, how):
    p = str(p)
    if how == "flipped":
        flip(p, data_offset(p, "live/start"))
    elif how == "cut":
        os.truncate(p, os.path.getsize(p) // 2)
    elif how == "empty":
        os.truncate(p, 0)
    elif how == "not-hdf5":
        with open(p, "w") as f:
            f.write("experiment: {name: x}\n")
    elif how == "foreign":
        os.remove(p)
        with h5py.File(p, "w") as f:
            f["data"] = np.arange(10)
            f.attrs["generation"] = 99
    elif how == "fifo":
        os.remove(p)
        os.mkfifo(p)
    return p


REASONS = {"flipped": "checksum mismatch", "cut": "unreadable", "empty": "empty file",
           "not-hdf5": "not an HDF5 file", "foreign": "not a nasrun checkpoint",
           "fifo": "not a regular file"}


def two_generations(tmp_path):
    recs = sample_records(16)
    write_experiment(str(tmp_path), recs, commit_every=2)
    return [(r.trial_id, r.status) for r in recs]


@pytest.mark.parametrize("how", sorted(REASONS))
def test_damaged_newest_falls_back_and_the_journal_restores_everything(tmp_path, how):
    want = two_generations(tmp_path)
    p = damage(tmp_path / "experiment.h5", how)
    store = open_store(str(tmp_path))
    with pytest.warns(CheckpointWarning, match=REASONS[how]) as rec:
        got = store.load()
    assert p in str(rec[0].message) and "experiment.h5.1" in str(rec[0].message)
    assert [(r.trial_id, r.status) for r in got.state.all_records()] == want
    assert store.warnings and REASONS[how] in store.warnings[0]
    # the writer continues from there, and the bad file is set aside (a FIFO is removed)
    store.begin(SPEC, "t", got)
    store.commit({"after": 1})
    store.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointWarning)
        again = open_store(str(tmp_path)).load()
    assert again.runtime == {"after": 1}
    assert [(r.trial_id, r.status) for r in again.state.all_records()] == want


@pytest.mark.parametrize("how", sorted(REASONS))
def test_damaged_only_generation_is_a_clear_error(tmp_path, how):
    write_experiment(str(tmp_path), sample_records(4))
    for extra in os.listdir(tmp_path):
        if extra.startswith("experiment.h5."):
            os.remove(tmp_path / extra)
    p = damage(tmp_path / "experiment.h5", how)
    with pytest.raises(CheckpointError, match=REASONS[how]) as e:
        open_store(str(tmp_path)).load()
    assert p in str(e.value)


def test_a_damaged_segment_is_named_and_avoided_through_an_older_generation(tmp_path):
    recs = sample_records(16)
    write_experiment(str(tmp_path), recs, commit_every=100)
    seg = next(p for p in (tmp_path / "experiment.segments").iterdir() if p.name.startswith("seg"))
    flip(str(seg), data_offset(str(seg), "trials/metric"))
    # only the newest generation references it: the older one plus its journal has every trial
    with pytest.warns(CheckpointWarning, match=f"{seg.name}: checksum mismatch"):
        got = open_store(str(tmp_path)).load()
    assert [r.trial_id for r in got.state.all_records()] == [r.trial_id for r in recs]


def test_a_segment_every_generation_needs_is_a_clear_error(tmp_path):
    write_experiment(str(tmp_path), sample_records(16), commit_every=2)
    seg = sorted(p for p in (tmp_path / "experiment.segments").iterdir() if p.name.startswith("seg"))[0]
    flip(str(seg), data_offset(str(seg), "trials/metric"))
    with pytest.raises(CheckpointError, match="checksum mismatch") as e:
        open_store(str(tmp_path)).load()
    assert seg.name in str(e.value)


def test_random_byte_flips_in_the_main_file_never_give_garbage(tmp_path):
    want = two_generations(tmp_path)
    p = str(tmp_path / "experiment.h5")
    pristine = open(p, "rb").read()
    rng = np.random.default_rng(0)
    fallbacks = 0
    for off in rng.integers(0, len(pristine) - 4, 40):
        with open(p, "wb") as f:
            f.write(pristine)
        flip(p, int(off))
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            got = open_store(str(tmp_path)).load()
        assert [(r.trial_id, r.status) for r in got.state.all_records()] == want
        fallbacks += bool(w)
    assert fallbacks > 0


def test_newer_and_older_format_versions_are_refused(tmp_path):
    write_experiment(str(tmp_path), sample_records(2))
    for extra in os.listdir(tmp_path):
        if extra.startswith("experiment.h5."):
            os.remove(tmp_path / extra)
    with h5py.File(tmp_path / "experiment.h5", "r+") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(CheckpointError, match="newer nasrun"):
        open_store(str(tmp_path)).load()
    with h5py.File(tmp_path / "experiment.h5", "r+") as f:
        f.attrs["format_version"] = 1
    with pytest.raises(CheckpointError, match="older nasrun"):
        open_store(str(tmp_path)).load()


def test_missing_main_file_uses_previous_generation(tmp_path):
    """A kill between the renames of a rotation leaves only .1: that is the newest."""
    want = two_generations(tmp_path)
    os.remove(tmp_path / "experiment.h5")
    got = open_store(str(tmp_path)).load()
    assert [(r.trial_id, r.status) for r in got.state.all_records()] == want


def test_unstorable_strategy_state_leaves_the_checkpoint_as_it_was(tmp_path):
    write_experiment(str(tmp_path), sample_records(4), runtime={"step": 1})
    store = open_store(str(tmp_path))
    store.begin(SPEC, "t", store.load())
    with pytest.raises(TypeError, match="strategy_state.bad"):
        store.commit({"step": 2}, (5, {"bad": {1, 2}}))
    store.close()
    assert open_store(str(tmp_path)).load().runtime == {"step": 1}


def test_one_writer_per_experiment_and_a_dead_owner_does_not_keep_the_lock(tmp_path):
    first = open_store(str(tmp_path))
    first.begin(SPEC, "t", None)
    second = open_store(str(tmp_path))
    with pytest.raises(LockedError, match=f"pid {os.getpid()}"):
        second.begin(SPEC, "t", None)
    first.close()
    second.begin(SPEC, "t", None)  # released: taken
    second.close()
    # a lock left by a process that died is taken over
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (tmp_path / "experiment.lock").write_text(json.dumps(
        {"host": __import__("socket").gethostname(), "pid": int(dead)}))
    third = open_store(str(tmp_path))
    third.begin(SPEC, "t", None)
    third.close()


def test_a_zombie_owner_does_not_keep_the_lock(tmp_path):
    """A killed writer stays a zombie until its new parent reaps it; signal 0 still reaches it.
    A run resumed at once must take the lock over, not be refused for a process that is gone."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 60
        while open(f"/proc/{child.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.01)
        os.kill(child.pid, 0)  # a zombie: signal 0 still succeeds
        (tmp_path / "experiment.lock").write_text(json.dumps(
            {"host": __import__("socket").gethostname(), "pid": child.pid}))
        store = open_store(str(tmp_path))
        store.begin(SPEC, "t", None)
        assert json.loads((tmp_path / "experiment.lock").read_text())["pid"] == os.getpid()
        store.close()
    finally:
        child.wait()


def test_claiming_twice_is_one_claim_and_begin_keeps_it(tmp_path):
    store = open_store(str(tmp_path))
    store.claim()
    store.claim()
    store.begin(SPEC, "t", None)
    with pytest.raises(LockedError):
        open_store(str(tmp_path)).claim()
    store.close()
    assert not (tmp_path / "experiment.lock").exists()


def test_planted_symlinks_are_never_followed(tmp_path):
    target = tmp_path / "victim.txt"
    target.write_text("precious")
    d = tmp_path / "exp"
    d.mkdir()
    os.symlink(target, d / "experiment.h5.tmp")
    (d / "experiment.segments").mkdir()
    os.symlink(target, d / "experiment.segments" / "seg.tmp")
    write_experiment(str(d), sample_records(8), commit_every=2)
    assert target.read_text() == "precious"
    assert open_store(str(d)).load().state.finished == 4


def test_a_fifo_as_the_checkpoint_does_not_hang_readers(tmp_path):
    os.mkfifo(tmp_path / "experiment.h5")
    result = {}

    def load():
        try:
            open_store(str(tmp_path)).load()
        except CheckpointError as e:
            result["error"] = str(e)

    t = threading.Thread(target=load, daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive() and "not a regular file" in result["error"]


def test_forged_content_is_a_clear_checkpoint_error(tmp_path):
    write_experiment(str(tmp_path), sample_records(4))
    for extra in os.listdir(tmp_path):
        if extra.startswith("experiment.h5."):
            os.remove(tmp_path / extra)
    from nasrun.store.integrity import Writer
    p = tmp_path / "experiment.h5"
    with h5py.File(p, "r+") as f:  # a forged file with a valid checksum: deep JSON in /refs
        del f["refs"]
        f.create_dataset("refs", data="[" * 5000 + "]" * 5000, dtype=h5py.string_dtype())
        w = Writer(f)
        from nasrun.store.integrity import manifest
        w.lines = manifest(f)[0]
        w.seal()
    with pytest.raises(CheckpointError, match="malformed"):
        open_store(str(tmp_path)).load()


def test_a_full_disk_is_one_clear_error_and_what_was_written_stays(tmp_path):
    prog = f"""
import resource, signal, sys
sys.path.insert(0, {os.path.dirname(os.path.dirname(os.path.abspath(__file__)))!r})
from nasrun.errors import StorageError
from nasrun.store import open_store
from nasrun.store.events import Asked, Finished
from nasrun.trial import Outcome, Suggestion
store = open_store({str(tmp_path)!r})
store.begin("x: 1", "t", None)
store.commit({{}}, (-1, {{}}))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (60000, 60000))
try:
    for tid in range(100000):
        store.log(Asked(2 * tid, Suggestion(tid, {{"x": "y" * 200}})))
        store.log(Finished(2 * tid + 1, Outcome(tid, "done", {{"valid_accuracy": 1.0}}), 1.0))
        if tid % 50 == 49:
            store.commit({{}})
except StorageError as e:
    print("ERROR", e)
    print("LOGGED", tid)
"""
    r = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in r.stderr, r.stderr
    assert "ERROR cannot" in r.stdout and "intact" in r.stdout, r.stdout
    logged = int(r.stdout.split("LOGGED")[1])
    got = open_store(str(tmp_path)).load()
    assert logged - 1 <= got.state.finished <= logged + 1


def test_model_state_files_are_verified_against_their_reference(tmp_path):
    d = str(tmp_path)
    store = open_store(d)
    ref = store.states.write(sample_state(3, epoch=2, params=5000))
    assert difference(sample_state(3, epoch=2, params=5000), read_state_file(store.weights_dir, ref)) is None
    path = os.path.join(store.weights_dir, ref.file)
    flip(path, data_offset(path, "tensors/conv1.weight") + 100)
    with pytest.raises(StateError, match="checksum mismatch"):
        read_state_file(store.weights_dir, ref)
    other = store.states.write(sample_state(3, epoch=2, params=5000, seed=1))
    with pytest.raises(StateError, match="not the state the experiment recorded"):
        read_state_file(store.weights_dir, type(ref)(3, 2, other.file, ref.checksum))
    os.remove(path)
    with pytest.raises(StateError, match="is missing"):
        read_state_file(store.weights_dir, ref)
    with pytest.raises(StateError, match="not a file name"):
        read_state_file(store.weights_dir, type(ref)(3, 2, "../x.h5", ref.checksum))
