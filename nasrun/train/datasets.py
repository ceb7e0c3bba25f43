"""Datasets for ``objective.type: train``, as in-memory tensors with a deterministic split.

* ``digits``: scikit-learn's bundled handwritten digits (1797 images, 8x8, 10 classes), as
  1x8x8 float tensors scaled to [0, 1]. Nothing is downloaded.
* ``cifar10``: CIFAR-10's **binary version** read from a local directory: ``path`` is the
  ``cifar-10-batches-bin`` folder (or its parent) holding ``data_batch_1.bin`` ... (records of
  1 label byte + 3072 pixel bytes). The training batches are the pool that is split into train
  and validation. The "python version" (``cifar-10-batches-py``, torchvision's layout) is a set
  of pickles and is never read: unpickling a file can execute arbitrary code.
* ``file``: an ``.npz`` (read with ``allow_pickle=False``) or HDF5 (``.h5``/``.hdf5``) file with
  arrays ``x_key`` (samples first: (N, D), (N, H, W) or (N, C, H, W)) and ``y_key`` (N integer
  class labels 0..K-1).

The split: with ``rng = numpy.random.default_rng(seed)`` the samples are permuted and the first
``round(valid_fraction * N)`` form the validation set; the same seed gives the same split on
every rank and every run. ``limit`` keeps only the first N samples before the split.
"""
from __future__ import annotations

import glob
import os
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Tuple

import numpy as np

from ..errors import UserInputError

if TYPE_CHECKING:  # torch is imported where tensors are made: checking a data set needs none
    import torch

CIFAR_RECORD = 1 + 3 * 32 * 32
CIFAR_MEAN = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32)
CIFAR_STD = np.array([0.2470, 0.2435, 0.2616], dtype=np.float32)


@dataclass
class Data:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_valid: torch.Tensor
    y_valid: torch.Tensor
    num_classes: int

    @property
    def input_shape(self) -> Tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def load_digits_arrays() -> Tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    d = load_digits()
    return (d.images.astype(np.float32) / 16.0)[:, None, :, :], d.target.astype(np.int64)


def cifar_dir(path: str) -> str:
    """The folder holding CIFAR-10's binary batches, or a UserInputError saying what is there."""
    path = os.path.expandvars(os.path.expanduser(path))
    for d in (path, os.path.join(path, "cifar-10-batches-bin")):
        if glob.glob(os.path.join(d, "data_batch_*.bin")):
            return d
    for d in (path, os.path.join(path, "cifar-10-batches-py")):
        if os.path.exists(os.path.join(d, "data_batch_1")):
            raise UserInputError(
                f"{path}: found CIFAR-10's python version (pickled batches); nasrun does not unpickle "
                "files, which could run arbitrary code. Download the binary version "
                "(cifar-10-binary.tar.gz, folder cifar-10-batches-bin) and point dataset.path at it.")
    raise UserInputError(f"{path}: no CIFAR-10 binary batches (data_batch_*.bin) here or in "
                         "cifar-10-batches-bin/ (no downloads: point dataset.path at the data)")


def load_cifar_arrays(path: str) -> Tuple[np.ndarray, np.ndarray]:
    d = cifar_dir(path)
    xs, ys = [], []
    for f in sorted(glob.glob(os.path.join(d, "data_batch_*.bin"))):
        raw = np.fromfile(f, dtype=np.uint8)
        if raw.size == 0 or raw.size % CIFAR_RECORD:
            raise UserInputError(f"{f}: not a CIFAR-10 binary batch (size {raw.size} bytes is not a "
                                 f"multiple of {CIFAR_RECORD})")
        rec = raw.reshape(-1, CIFAR_RECORD)
        ys.append(rec[:, 0].astype(np.int64))
        xs.append(rec[:, 1:].reshape(-1, 3, 32, 32))
    y = np.concatenate(ys)
    if y.max() > 9:
        raise UserInputError(f"{d}: labels above 9: not CIFAR-10 binary batches")
    x = np.concatenate(xs).astype(np.float32) / 255.0
    x = (x - CIFAR_MEAN[None, :, None, None]) / CIFAR_STD[None, :, None, None]
    return x, y


def load_file_arrays(path: str, x_key: str = "x", y_key: str = "y") -> Tuple[np.ndarray, np.ndarray]:
    path = os.path.expandvars(os.path.expanduser(path))
    if not os.path.isfile(path):
        raise UserInputError(f"{path}: dataset file not found")
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".npz":
            with np.load(path, allow_pickle=False) as f:
                missing = [k for k in (x_key, y_key) if k not in f.files]
                if missing:
                    raise UserInputError(f"{path}: no array {missing[0]!r} (arrays: {', '.join(f.files)})")
                x, y = f[x_key], f[y_key]
        elif ext in (".h5", ".hdf5"):
            import h5py
            with h5py.File(path, "r") as f:
                missing = [k for k in (x_key, y_key) if k not in f]
                if missing:
                    raise UserInputError(f"{path}: no dataset {missing[0]!r} (has: {', '.join(f.keys())})")
                x, y = f[x_key][()], f[y_key][()]
        else:
            raise UserInputError(f"{path}: expected an .npz or .h5/.hdf5 file")
    except UserInputError:
        raise
    except (OSError, ValueError) as e:
        raise UserInputError(f"{path}: cannot read: {e}") from None
    check_arrays(path, x_key, y_key, x.shape, x.dtype, y)  # what validate checked, on the data
    x = x.astype(np.float32)
    if x.ndim == 3:
        x = x[:, None]
    return x, y.astype(np.int64)


def split(x: np.ndarray, y: np.ndarray, valid_fraction: float, seed: int,
          limit: Optional[int] = None) -> Data:
    if limit is not None:
        x, y = x[:limit], y[:limit]
    n = len(y)
    n_valid = int(round(valid_fraction * n))
    if n_valid < 1 or n - n_valid < 1:
        raise UserInputError(f"{n} samples cannot be split with valid_fraction {valid_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    v, t = perm[:n_valid], perm[n_valid:]
    import torch
    return Data(torch.from_numpy(x[t]), torch.from_numpy(y[t]), torch.from_numpy(x[v]),
                torch.from_numpy(y[v]), int(y.max()) + 1)


_CACHE: dict = {}


def load_dataset(ds, seed: int) -> Data:
    """The train/valid split of a spec's ``objective.dataset`` (cached per process)."""
    key = (ds.name, ds.path, ds.x_key, ds.y_key, ds.valid_fraction, ds.limit, seed)
    if key not in _CACHE:
        if ds.name == "digits":
            x, y = load_digits_arrays()
        elif ds.name == "cifar10":
            x, y = load_cifar_arrays(ds.path)
        elif ds.name == "file":
            x, y = load_file_arrays(ds.path, ds.x_key, ds.y_key)
        else:
            raise UserInputError(f"unknown dataset {ds.name!r}")
        _CACHE.clear()
        _CACHE[key] = split(x, y, ds.valid_fraction, seed, ds.limit)
    return _CACHE[key]


DIGITS_SHAPE = (1797, (1, 8, 8))


def _npz_header(path: str, key: str) -> Tuple[Tuple[int, ...], np.dtype]:
    """Shape and dtype of array ``key`` of an .npz file, from its header only (no data read)."""
    with zipfile.ZipFile(path) as z:
        names = [n[:-4] for n in z.namelist() if n.endswith(".npy")]
        if key not in names:
            raise UserInputError(f"{path}: no array {key!r} (arrays: {', '.join(names)[:200]})")
        with z.open(key + ".npy") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, _fortran, dtype = read(f)
    return tuple(shape), dtype


def check_dataset(ds) -> Tuple[int, Tuple[int, ...]]:
    """Validate-time check of a spec's data set, reading headers and labels only (nothing is
    downloaded): (number of samples, shape of one input as the network sees it), or a
    UserInputError saying what is wrong."""
    if ds.name == "digits":
        return DIGITS_SHAPE
    if ds.name == "cifar10":
        d = cifar_dir(ds.path)
        n = 0
        for f in sorted(glob.glob(os.path.join(d, "data_batch_*.bin"))):
            size = os.path.getsize(f)
            if size == 0 or size % CIFAR_RECORD:
                raise UserInputError(f"{f}: not a CIFAR-10 binary batch (size {size} bytes is not a "
                                     f"multiple of {CIFAR_RECORD})")
            n += size // CIFAR_RECORD
        return n, (3, 32, 32)
    if ds.name != "file":
        raise UserInputError(f"unknown dataset {ds.name!r}")
    path = os.path.expandvars(os.path.expanduser(ds.path))
    if not os.path.isfile(path):
        raise UserInputError(f"{path}: dataset file not found")
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".npz":
            (xshape, xdtype), (_, ydtype) = _npz_header(path, ds.x_key), _npz_header(path, ds.y_key)
            if xdtype.hasobject or ydtype.hasobject:
                raise UserInputError(f"{path}: arrays must be numeric")
            with np.load(path, allow_pickle=False) as f:
                y = f[ds.y_key]
        elif ext in (".h5", ".hdf5"):
            import h5py
            with h5py.File(path, "r") as f:
                missing = [k for k in (ds.x_key, ds.y_key) if k not in f]
                if missing:
                    raise UserInputError(f"{path}: no dataset {missing[0]!r} "
                                         f"(has: {', '.join(f.keys())[:200]})")
                if not all(isinstance(f[k], h5py.Dataset) for k in (ds.x_key, ds.y_key)):
                    raise UserInputError(f"{path}: {ds.x_key!r} and {ds.y_key!r} must be datasets")
                xshape, xdtype = tuple(f[ds.x_key].shape), f[ds.x_key].dtype
                if xdtype.kind not in "biuf":
                    raise UserInputError(f"{path}: arrays must be numeric")
                y = f[ds.y_key][()]
        else:
            raise UserInputError(f"{path}: expected an .npz or .h5/.hdf5 file")
    except UserInputError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise UserInputError(f"{path}: cannot read: {str(e)[:200]}") from None
    return check_arrays(path, ds.x_key, ds.y_key, xshape, xdtype, y)


def check_arrays(path: str, x_key: str, y_key: str, xshape: Tuple[int, ...], xdtype: np.dtype,
                 y: Any) -> Tuple[int, Tuple[int, ...]]:
    """The checks of a file data set, from the inputs' shape and dtype and the labels (validate
    has only the inputs' header, a run the arrays): (number of samples, shape of one input as
    the network sees it), or a UserInputError."""
    y = np.asarray(y)
    if xdtype.kind not in "biuf" or y.dtype.kind not in "biuf":
        raise UserInputError(f"{path}: arrays must be numeric")
    if not xshape or xshape[0] != (len(y) if y.ndim else -1):
        raise UserInputError(f"{path}: {x_key} has {xshape[0] if xshape else 0} samples but "
                             f"{y_key} has {len(y) if y.ndim else 0}")
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or (len(y) and y.min() < 0):
        raise UserInputError(f"{path}: {y_key} must be a 1-D array of class labels 0..K-1")
    shape = tuple(xshape[1:])
    if len(shape) == 2:
        shape = (1,) + shape
    if len(shape) not in (1, 3) or 0 in shape:
        raise UserInputError(f"{path}: {x_key} must have shape (N, D), (N, H, W) or (N, C, H, W), "
                             f"got {tuple(xshape)}")
    return len(y), tuple(int(v) for v in shape)
