"""Checksums of HDF5 checkpoint files, and a writer that computes them while writing.

Every dataset and every attribute of a file is described by one manifest line: the path, then
for a dataset its dtype, shape and CRC32 of its bytes (strings: of their JSON text), for an
attribute its value as JSON. The file's ``checksum`` attribute (on ``/``) is the SHA-256 of the
sorted manifest, so a flipped byte anywhere in the data, a missing or an extra dataset or
attribute, or a truncated file is detected. CRC32 (4 GB/s here) rather than SHA-256 (1 GB/s)
on the bulk bytes keeps verification cheaper than the disk; the aim is to catch accidents
(torn writes, bit rot, truncation), not forgery.

Set ``NASRUN_TEST_SLOW_WRITE=<seconds>`` to sleep after each dataset written (tests use it to
kill a writer in the middle of a file).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import zlib
from typing import Any, Dict, Sequence, Tuple

import h5py
import numpy as np

CHECKSUM = "checksum"
SLOW_WRITE_ENV = "NASRUN_TEST_SLOW_WRITE"
STR = h5py.string_dtype()


def _crc(buf: Any) -> str:
    return f"{zlib.crc32(buf) & 0xFFFFFFFF:08x}"


def _contiguous(arr: np.ndarray) -> np.ndarray:
    return arr if arr.flags.c_contiguous else arr.copy(order="C")  # (ascontiguousarray makes 0-d 1-d)


def array_line(arr: np.ndarray) -> str:
    a = _contiguous(arr)
    return f"{a.dtype.str}|{list(a.shape)}|{_crc(a.reshape(-1).view(np.uint8) if a.size else b'')}"


def text_line(value: Any, shape: Tuple[int, ...]) -> str:
    data = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return f"str|{list(shape)}|{_crc(data.encode('utf-8', 'surrogatepass'))}"


def attr_line(value: Any) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    elif isinstance(value, np.ndarray):
        value = value.tolist()
    return "attr|" + json.dumps(value, ensure_ascii=False, sort_keys=True)


def digest(lines: Dict[str, str]) -> str:
    h = hashlib.sha256()
    for path in sorted(lines):
        h.update(f"{path}\t{lines[path]}\n".encode("utf-8"))
    return h.hexdigest()


class Writer:
    """Writes datasets and attributes into an open h5py file, keeping their manifest lines."""

    def __init__(self, f: h5py.File):
        self.f = f
        self.lines: Dict[str, str] = {}
        self.slow = float(os.environ.get(SLOW_WRITE_ENV) or 0)

    def attr(self, path: str, name: str, value: Any) -> None:
        obj = self.f.require_group(path) if path not in self.f else self.f[path]
        obj.attrs[name] = value
        self.lines[f"{obj.name}@{name}"] = attr_line(obj.attrs[name])

    def array(self, path: str, arr: np.ndarray) -> h5py.Dataset:
        arr = _contiguous(np.asarray(arr))
        ds = self.f.create_dataset(path, data=arr)
        self.lines[ds.name] = array_line(arr)
        self._pause()
        return ds

    def text(self, path: str, value: str) -> h5py.Dataset:
        ds = self.f.create_dataset(path, data=value, dtype=STR)
        self.lines[ds.name] = text_line(value, ())
        self._pause()
        return ds

    def texts(self, path: str, values: Sequence[str]) -> h5py.Dataset:
        values = list(values)
        ds = self.f.create_dataset(path, data=np.array(values, dtype=object), dtype=STR,
                                   shape=(len(values),))
        self.lines[ds.name] = text_line(values, (len(values),))
        self._pause()
        return ds

    def seal(self) -> str:
        """Write the checksum attribute; the file is complete after this."""
        c = digest(self.lines)
        self.f.attrs[CHECKSUM] = c
        return c

    def _pause(self) -> None:
        if self.slow > 0:
            self.f.flush()
            time.sleep(self.slow)


def read_dataset(ds: h5py.Dataset) -> Tuple[Any, str]:
    """A dataset's value (str / list of str for string datasets, else an array) and its line."""
    info = h5py.check_string_dtype(ds.dtype)
    if info is not None and info.length is None:  # variable-length text (fixed-length: bytes)
        v = ds.asstr()[()]
        value = v.tolist() if isinstance(v, np.ndarray) else v
        return value, text_line(value, ds.shape)
    arr = ds[...] if ds.shape == () else ds[()]  # [...] keeps a 0-d array's byte order
    return arr, array_line(arr)


def manifest(f: h5py.File) -> Tuple[Dict[str, str], Dict[str, Any]]:
    """(lines, dataset values by path) of every dataset and attribute in ``f`` but the checksum."""
    lines: Dict[str, str] = {}
    values: Dict[str, Any] = {}

    def attrs(obj: Any) -> None:
        for name in obj.attrs:
            if obj.name == "/" and name == CHECKSUM:
                continue
            lines[f"{obj.name}@{name}"] = attr_line(obj.attrs[name])

    def visit(_name: str, obj: Any) -> None:
        attrs(obj)
        if isinstance(obj, h5py.Dataset):
            values[obj.name], lines[obj.name] = read_dataset(obj)

    attrs(f)
    f.visititems(visit)
    return lines, values


def verify(f: h5py.File) -> Dict[str, Any]:
    """Check ``f`` against its checksum attribute; the dataset values by path when it matches.

    Raises ``ValueError`` with the reason otherwise.
    """
    stored = f.attrs.get(CHECKSUM)
    if stored is None:
        raise ValueError("no checksum attribute: the file was not completely written")
    lines, values = manifest(f)
    actual = digest(lines)
    if actual != (stored.decode() if isinstance(stored, bytes) else str(stored)):
        raise ValueError(f"checksum mismatch (stored {str(stored)[:12]}..., content {actual[:12]}...): "
                         "the content is corrupt")
    return values
