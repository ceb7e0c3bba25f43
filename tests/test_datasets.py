import h5py
import numpy as np
import pytest

from nasrun.errors import UserInputError
from nasrun.spec.schema import DatasetSpec
from nasrun.train.datasets import (
    CIFAR_RECORD,
    load_cifar_arrays,
    load_dataset,
    load_digits_arrays,
    load_file_arrays,
    split,
)


def test_digits_shape_and_range():
    x, y = load_digits_arrays()
    assert x.shape == (1797, 1, 8, 8) and x.min() >= 0 and x.max() <= 1
    assert set(np.unique(y)) == set(range(10))


def test_split_is_deterministic_and_disjoint():
    x = np.arange(100, dtype=np.float32)[:, None]
    y = np.arange(100) % 3
    a, b, c = split(x, y, 0.2, 7), split(x, y, 0.2, 7), split(x, y, 0.2, 8)
    assert len(a.y_valid) == 20 and len(a.y_train) == 80
    assert np.array_equal(a.x_valid.numpy(), b.x_valid.numpy())
    assert not np.array_equal(a.x_valid.numpy(), c.x_valid.numpy())
    assert not set(a.x_valid[:, 0].tolist()) & set(a.x_train[:, 0].tolist())
    assert len(split(x, y, 0.5, 0, limit=10).y_train) == 5


def _fake_cifar(d, n_per_batch=(5, 3)):
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels = []
    for i, n in enumerate(n_per_batch, start=1):
        rec = rng.integers(0, 256, size=(n, CIFAR_RECORD), dtype=np.uint8)
        rec[:, 0] = np.arange(n) % 10
        labels += list(rec[:, 0])
        rec.tofile(d / f"data_batch_{i}.bin")
    return labels, rec


def test_fake_cifar_binary(tmp_path):
    labels, last = _fake_cifar(tmp_path / "cifar-10-batches-bin")
    x, y = load_cifar_arrays(str(tmp_path))  # the parent folder works too
    assert x.shape == (8, 3, 32, 32) and list(y) == labels
    # the last record's red channel, first pixel, normalised
    assert np.isclose(x[-1, 0, 0, 0], (last[-1, 1] / 255.0 - 0.4914) / 0.2470, atol=1e-5)


def test_cifar_pickle_version_is_refused(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    (d / "data_batch_1").write_bytes(b"not read")
    with pytest.raises(UserInputError, match="does not unpickle"):
        load_cifar_arrays(str(tmp_path))


def test_cifar_errors(tmp_path):
    with pytest.raises(UserInputError, match="no CIFAR-10 binary batches"):
        load_cifar_arrays(str(tmp_path))
    (tmp_path / "data_batch_1.bin").write_bytes(b"x" * 100)
    with pytest.raises(UserInputError, match="not a CIFAR-10 binary batch"):
        load_cifar_arrays(str(tmp_path))


def test_npz_and_h5(tmp_path):
    x = np.random.default_rng(0).normal(size=(30, 4, 4)).astype(np.float32)
    y = np.arange(30) % 3
    np.savez(tmp_path / "d.npz", x=x, y=y)
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["images"], f["labels"] = x, y
    xa, ya = load_file_arrays(str(tmp_path / "d.npz"))
    xb, yb = load_file_arrays(str(tmp_path / "d.h5"), "images", "labels")
    assert xa.shape == (30, 1, 4, 4) and np.array_equal(xa, xb) and np.array_equal(ya, yb)
    data = load_dataset(DatasetSpec("file", str(tmp_path / "d.npz"), valid_fraction=0.2), seed=0)
    assert data.num_classes == 3 and len(data.y_valid) == 6 and data.input_shape == (1, 4, 4)


def test_file_errors(tmp_path):
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}], dtype=object), y=np.array([0]))
    with pytest.raises(UserInputError, match="cannot read"):  # allow_pickle=False refuses objects
        load_file_arrays(str(tmp_path / "obj.npz"))
    np.savez(tmp_path / "k.npz", a=np.zeros((3, 2)), y=np.zeros(3, int))
    with pytest.raises(UserInputError, match="no array 'x'"):
        load_file_arrays(str(tmp_path / "k.npz"))
    np.savez(tmp_path / "n.npz", x=np.zeros((3, 2)), y=np.zeros(4, int))
    with pytest.raises(UserInputError, match="3 samples but y has 4"):
        load_file_arrays(str(tmp_path / "n.npz"))
    with pytest.raises(UserInputError, match="not found"):
        load_file_arrays(str(tmp_path / "missing.npz"))
    (tmp_path / "d.txt").write_text("x")
    with pytest.raises(UserInputError, match=r"expected an \.npz"):
        load_file_arrays(str(tmp_path / "d.txt"))
