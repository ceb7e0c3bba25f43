"""HDF5 store: exact round trips, generations, model files, and corruption handling."""
import json
import os
import shutil
import warnings

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from test_store_codec import nested

from nasrun.errors import CheckpointError
from nasrun.store import CheckpointWarning, HDF5Store, ModelState, Snapshot, open_store
from nasrun.store.sample import SPEC, difference, sample_snapshot


def saved(tmp_path, steps=(1,), generations=2, **kw):
    store = open_store(str(tmp_path), generations)
    for s in steps:
        store.save(sample_snapshot(s, **kw))
    return store


def test_round_trip_realistic_snapshot(tmp_path):
    snap = sample_snapshot(4)
    assert {t.status for t in snap.trials} == {"queued", "running", "done", "failed"}
    assert {t.dtype for m in snap.models.values() for t in m.tensors.values()} >= {
        np.dtype("float32"), np.dtype("float64"), np.dtype("int64")}
    open_store(str(tmp_path)).save(snap)
    got = open_store(str(tmp_path)).load()
    assert difference(snap, got) is None


def test_empty_snapshot_round_trip(tmp_path):
    snap = Snapshot("", "0.1.0")
    store = HDF5Store(str(tmp_path / "run.h5"))
    store.save(snap)
    assert difference(snap, HDF5Store(str(tmp_path / "run.h5")).load()) is None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(state=nested)
def test_strategy_state_round_trip_through_hdf5(tmp_path, state):
    snap = Snapshot(SPEC, "0.1.0", strategy_state={"s": state}, runtime_state={"r": [state]})
    path = str(tmp_path / "h.h5")
    HDF5Store(path).save(snap)
    assert difference(snap, HDF5Store(path).load()) is None
    shutil.rmtree(tmp_path / "h.weights", ignore_errors=True)


def test_no_experiment_is_none_and_directory_means_experiment_h5(tmp_path):
    assert open_store(str(tmp_path)).load() is None
    assert open_store(str(tmp_path / "new")).path == str(tmp_path / "new" / "experiment.h5")
    saved(tmp_path)
    assert os.path.exists(tmp_path / "experiment.h5")


def test_self_describing_for_plain_h5py(tmp_path):
    saved(tmp_path, steps=(2,))
    with h5py.File(tmp_path / "experiment.h5", "r") as f:
        assert f.attrs["format"] == "nasrun-experiment" and f.attrs["spec"] == SPEC
        assert f.attrs["nasrun_version"] == "0.1.0" and f.attrs["metric"] == "valid_accuracy"
        status = f["trials/status"].asstr()[:].tolist()
        metric = f["trials/metric"][:]
        assert status[:4] == ["done", "failed", "running", "queued"]
        assert metric[0] == pytest.approx(0.5) and np.isnan(metric[1])
        assert json.loads(f["trials/config"].asstr()[0])["op"] == "conv3x3"
        assert json.loads(f["runtime/state"].asstr()[()])["jobs"][0]["job_id"] == "123"
        ref = f["models/2"].attrs
        with h5py.File(tmp_path / "experiment.weights" / ref["file"], "r") as m:
            assert m["tensors/conv1.weight"].dtype == np.float32
            assert m["tensors/fc%2Fbias"].shape == (10,)


def test_generations_rotate_and_prune(tmp_path):
    store = saved(tmp_path, steps=range(1, 6), generations=3)
    names = sorted(os.listdir(tmp_path))
    assert names == ["experiment.h5", "experiment.h5.1", "experiment.h5.2", "experiment.weights"]
    gens = [HDF5Store._generation_of(str(tmp_path / n)) for n in names[:3]]
    assert gens == [5, 4, 3]
    # model files: only those referenced by the three kept generations
    want = set()
    for n in names[:3]:
        with h5py.File(tmp_path / n, "r") as f:
            want |= {f[f"models/{k}"].attrs["file"] for k in f["models"]}
    assert set(os.listdir(tmp_path / "experiment.weights")) == want
    assert store.load().runtime_state["step"] == 5


def test_unchanged_model_states_are_not_rewritten(tmp_path):
    store = open_store(str(tmp_path))
    snap = sample_snapshot(1)
    store.save(snap)
    before = {n: os.stat(tmp_path / "experiment.weights" / n).st_ino
              for n in os.listdir(tmp_path / "experiment.weights")}
    snap.runtime_state["step"] = 99
    store.save(snap)  # same trials at the same epochs: files reused
    assert {n: os.stat(tmp_path / "experiment.weights" / n).st_ino
            for n in os.listdir(tmp_path / "experiment.weights")} == before
    snap.models[2] = ModelState(2, 5, {"w": np.ones(3, np.float32)})
    store.save(snap)
    got = open_store(str(tmp_path)).load()
    assert got.runtime_state["step"] == 99 and difference(snap.models, got.models) is None
    # a fresh process continues the dedupe after load()
    s2 = open_store(str(tmp_path))
    s2.load()
    files = set(os.listdir(tmp_path / "experiment.weights"))
    s2.save(snap)
    assert set(os.listdir(tmp_path / "experiment.weights")) <= files  # nothing new written


def flip(path, offset, n=4):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(n)
        f.seek(offset)
        f.write(bytes(x ^ 0xFF for x in b))


def data_offset(path, dataset):
    with h5py.File(path, "r") as f:
        return f[dataset].id.get_offset()


def damage_newest(tmp_path, how):
    p = str(tmp_path / "experiment.h5")
    if how == "flipped":
        flip(p, data_offset(p, "trials/metric"))
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
    return p


REASONS = {"flipped": "checksum mismatch", "cut": "unreadable", "empty": "empty file",
           "not-hdf5": "not an HDF5 file", "foreign": "not a nasrun checkpoint"}


@pytest.mark.parametrize("how", sorted(REASONS))
def test_damaged_newest_falls_back_with_a_warning(tmp_path, how):
    saved(tmp_path, steps=(1, 2))
    p = damage_newest(tmp_path, how)
    store = open_store(str(tmp_path))
    with pytest.warns(CheckpointWarning, match=REASONS[how]) as rec:
        got = store.load()
    assert p in str(rec[0].message) and "experiment.h5.1" in str(rec[0].message)
    assert difference(sample_snapshot(1), got) is None
    assert store.warnings and REASONS[how] in store.warnings[0]
    # the next save keeps the good generation and sets the bad file aside
    store.save(sample_snapshot(3))
    assert open_store(str(tmp_path)).load().runtime_state["step"] == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointWarning)  # the bad file is no generation any more
        assert HDF5Store(str(tmp_path / "experiment.h5.1")).load().runtime_state["step"] == 1
    assert os.path.exists(tmp_path / "experiment.h5.bad")


@pytest.mark.parametrize("how", sorted(REASONS))
def test_damaged_only_generation_is_a_clear_error(tmp_path, how):
    saved(tmp_path, steps=(1,))
    p = damage_newest(tmp_path, how)
    with pytest.raises(CheckpointError, match=REASONS[how]) as e:
        open_store(str(tmp_path)).load()
    assert p in str(e.value)


def test_every_generation_damaged_names_all_files(tmp_path):
    saved(tmp_path, steps=(1, 2))
    damage_newest(tmp_path, "cut")
    os.truncate(tmp_path / "experiment.h5.1", 0)
    with pytest.raises(CheckpointError) as e:
        open_store(str(tmp_path)).load()
    msg = str(e.value)
    assert "experiment.h5:" in msg and "experiment.h5.1:" in msg and "empty file" in msg


def test_damaged_model_file_falls_back(tmp_path):
    saved(tmp_path, steps=(1, 2))
    p = str(tmp_path / "experiment.h5")
    with h5py.File(p, "r") as f:
        model = str(tmp_path / "experiment.weights" / f["models/2"].attrs["file"])
    flip(model, data_offset(model, "tensors/conv1.weight") + 100)
    with pytest.warns(CheckpointWarning, match="model state of trial 2"):
        got = open_store(str(tmp_path)).load()
    assert got.runtime_state["step"] == 1
    # status-style loads skip the model files
    assert open_store(str(tmp_path)).load(models=False).runtime_state["step"] == 2
    os.remove(model)
    with pytest.warns(CheckpointWarning, match="is missing"):
        open_store(str(tmp_path)).load()


def test_random_byte_flips_never_give_garbage(tmp_path):
    """Wherever bytes are flipped in the newest file, load returns it intact or the older one."""
    saved(tmp_path, steps=(1, 2))
    p = str(tmp_path / "experiment.h5")
    pristine = open(p, "rb").read()
    rng = np.random.default_rng(0)
    outcomes = {"same": 0, "fallback": 0}
    for off in rng.integers(0, len(pristine) - 4, 60):
        with open(p, "wb") as f:
            f.write(pristine)
        flip(p, int(off))
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            got = open_store(str(tmp_path)).load()
        if got.runtime_state["step"] == 2:
            assert difference(sample_snapshot(2), got) is None and not w
            outcomes["same"] += 1
        else:
            assert difference(sample_snapshot(1), got) is None and w
            outcomes["fallback"] += 1
    assert outcomes["fallback"] > 0


def test_newer_format_version_is_refused(tmp_path):
    saved(tmp_path)
    with h5py.File(tmp_path / "experiment.h5", "r+") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(CheckpointError, match="newer nasrun"):
        open_store(str(tmp_path)).load()


def test_missing_main_file_uses_previous_generation(tmp_path):
    """A kill between the two renames of a rotation leaves only .1: that is the newest."""
    saved(tmp_path, steps=(1, 2))
    os.replace(tmp_path / "experiment.h5", tmp_path / "experiment.h5.tmp")
    assert open_store(str(tmp_path)).load().runtime_state["step"] == 1


def test_unstorable_state_fails_before_touching_the_checkpoint(tmp_path):
    store = saved(tmp_path)
    snap = sample_snapshot(2)
    snap.strategy_state["bad"] = {1, 2}
    with pytest.raises(TypeError, match="strategy_state.bad"):
        store.save(snap)
    assert open_store(str(tmp_path)).load().runtime_state["step"] == 1
