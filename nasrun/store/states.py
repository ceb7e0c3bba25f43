"""Model states (weights + optimizer state) as files, written by the worker groups themselves.

A state never travels to rank 0: the group's leader writes it into the experiment's weights
directory (a file system every node sees) and sends rank 0 only a :class:`StateRef`; the group
that continues or promotes the trial reads the file itself. Writing happens on a background
thread (:class:`AsyncStateWriter`): training stalls only for the copy to host memory.

File layout (plain h5py reads it): attrs ``format="nasrun-model-state"``, ``format_version``,
``trial_id``, ``epoch``, ``tensor_names`` (JSON list, in order), ``checksum``; ``/tensors/<name>``
one contiguous dataset per tensor ("/" and "%" in a name are %-escaped), ``/meta`` JSON and
``/meta_arrays/<i>``. Tensors are neither chunked nor compressed (trained weights barely
compress, gzip is far slower than the disk). Written under a unique temporary name (created
exclusively: a planted symlink is never followed), fsynced, then renamed to
``trial<id>-epoch<e>-<random>.h5``; the checksum (see :mod:`nasrun.store.integrity`) is also
kept in the reference, so a reader detects a damaged file or a file that is not the one recorded.
"""
from __future__ import annotations

import copy
import json
import os
import queue
import secrets
import stat
import threading
import time
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import quote

import h5py
import numpy as np

from . import codec
from .base import ModelState, StateRef
from .integrity import Writer, verify

MODEL_FORMAT = "nasrun-model-state"
FORMAT_VERSION = 2


class StateError(Exception):
    """A model state that cannot be used (missing, damaged, not the one recorded)."""


def _key(name: str) -> str:
    """A tensor name as an HDF5 link name (injective: '%' and '/' are escaped)."""
    k = quote(name, safe=" ._-:+()[]{},;=")
    return {"": "%00", ".": "%2E", "..": "%2E%2E"}.get(k, k)


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def exclusive_tmp(directory: str, prefix: str) -> str:
    """A new empty file in ``directory`` with a unique name, created with O_EXCL (never
    following a symlink planted under a predictable name); its path."""
    for _ in range(100):
        path = os.path.join(directory, f".{prefix}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                         0o644)
        except FileExistsError:
            continue
        os.close(fd)
        return path
    raise OSError(f"cannot create a temporary file in {directory}")


def write_state_file(directory: str, ms: ModelState) -> StateRef:
    """Write ``ms`` into ``directory`` (atomically: tmp, fsync, rename, dir fsync); its reference."""
    os.makedirs(directory, exist_ok=True)
    tmp = exclusive_tmp(directory, f"trial{ms.trial_id}")
    names = list(ms.tensors)
    nbytes = 0
    try:
        with h5py.File(tmp, "w", locking=False) as f:
            w = Writer(f)
            for k, val in [("format", MODEL_FORMAT), ("format_version", FORMAT_VERSION),
                           ("trial_id", int(ms.trial_id)), ("epoch", int(ms.epoch)),
                           ("tensor_names", json.dumps(names))]:
                w.attr("/", k, val)
            f.require_group("/tensors")
            for n in names:
                t = np.asarray(ms.tensors[n])
                if t.dtype.kind not in codec.ARRAY_KINDS or t.dtype.fields is not None:
                    raise TypeError(f"trial {ms.trial_id} tensor {n!r}: cannot store dtype {t.dtype}")
                w.array(f"/tensors/{_key(n)}", t)
                nbytes += t.nbytes
            text, arrays = codec.encode(ms.meta, f"trial {ms.trial_id} meta")
            w.text("/meta", text)
            f.require_group("/meta_arrays")
            for i, a in enumerate(arrays):
                w.array(f"/meta_arrays/{i}", a)
            checksum = w.seal()
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        name = f"trial{ms.trial_id:06d}-epoch{ms.epoch:04d}-{secrets.token_hex(4)}.h5"
        os.replace(tmp, os.path.join(directory, name))
        fsync_dir(directory)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    return StateRef(int(ms.trial_id), int(ms.epoch), name, checksum, int(nbytes))


def read_state_file(directory: str, ref: StateRef) -> ModelState:
    """The state ``ref`` points at, verified; :class:`StateError` naming the file and the fault."""
    path = os.path.join(directory, ref.file)
    where = f"model state {path} (trial {ref.trial_id}, epoch {ref.epoch})"
    if os.path.basename(ref.file) != ref.file or ref.file.startswith("."):
        raise StateError(f"{where}: not a file name of the weights directory")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise StateError(f"{where} is missing") from None
    if not stat.S_ISREG(st.st_mode):
        raise StateError(f"{where} is not a regular file")
    try:
        with h5py.File(path, "r", locking=False) as f:
            if f.attrs.get("format") != MODEL_FORMAT:
                raise StateError(f"{where}: not a nasrun model state file")
            try:
                values = verify(f)
            except ValueError as e:
                raise StateError(f"{where}: {e}") from None
            if str(f.attrs["checksum"]) != ref.checksum:
                raise StateError(f"{where}: not the state the experiment recorded (checksum differs)")
            names = json.loads(f.attrs["tensor_names"])
            tensors = {n: values[f"/tensors/{_key(n)}"] for n in names}
            arrays: List[np.ndarray] = []
            while f"/meta_arrays/{len(arrays)}" in values:
                arrays.append(values[f"/meta_arrays/{len(arrays)}"])
            meta = codec.decode(values["/meta"], arrays)
            return ModelState(int(f.attrs["trial_id"]), int(f.attrs["epoch"]), tensors, meta)
    except StateError:
        raise
    except Exception as e:  # h5py raises OSError, KeyError, ValueError... on damage
        raise StateError(f"{where}: unreadable ({type(e).__name__}: {e})") from None


class StateStore:
    """Where model states go: ``write`` gives a reference, ``read`` verifies, ``delete`` frees."""

    def write(self, ms: ModelState) -> StateRef:
        raise NotImplementedError

    def read(self, ref: StateRef) -> ModelState:
        raise NotImplementedError

    def delete(self, ref: StateRef) -> None:
        raise NotImplementedError

    def location(self) -> Optional[str]:
        """The directory worker processes write into (None: in this process only)."""
        return None


class FileStates(StateStore):
    def __init__(self, directory: str):
        self.directory = directory

    def write(self, ms: ModelState) -> StateRef:
        return write_state_file(self.directory, ms)

    def read(self, ref: StateRef) -> ModelState:
        return read_state_file(self.directory, ref)

    def delete(self, ref: StateRef) -> None:
        try:
            os.remove(os.path.join(self.directory, os.path.basename(ref.file)))
        except FileNotFoundError:
            pass

    def location(self) -> Optional[str]:
        return self.directory

    def files(self) -> List[str]:
        try:
            return sorted(n for n in os.listdir(self.directory) if n.endswith(".h5"))
        except FileNotFoundError:
            return []


class MemoryStates(StateStore):
    """States kept in this process (tests, in-memory simulations); values are copied in and out."""

    def __init__(self) -> None:
        self.items: Dict[str, ModelState] = {}
        self.written = 0

    def write(self, ms: ModelState) -> StateRef:
        self.written += 1
        name = f"mem-trial{ms.trial_id}-epoch{ms.epoch}-{self.written}"
        self.items[name] = ModelState(ms.trial_id, ms.epoch,
                                      {k: np.array(v, copy=True) for k, v in ms.tensors.items()},
                                      copy.deepcopy(ms.meta))
        return StateRef(ms.trial_id, ms.epoch, name, name,
                        int(sum(np.asarray(v).nbytes for v in ms.tensors.values())))

    def read(self, ref: StateRef) -> ModelState:
        ms = self.items.get(ref.file)
        if ms is None:
            raise StateError(f"model state {ref.file} (trial {ref.trial_id}) is missing")
        return ModelState(ms.trial_id, ms.epoch, {k: v.copy() for k, v in ms.tensors.items()},
                          copy.deepcopy(ms.meta))

    def delete(self, ref: StateRef) -> None:
        self.items.pop(ref.file, None)


class AsyncStateWriter:
    """Writes states on one background thread, in submission order.

    ``submit(state)`` returns at once (the caller hands over a host copy it will not modify);
    ``done()`` returns the (trial_id, reference or error text) of the writes completed since
    the last call; ``wait()`` blocks until everything submitted is written. ``stall`` sums the
    time ``submit`` blocked the caller (only when ``max_pending`` writes are already queued).
    """

    def __init__(self, states: StateStore, max_pending: int = 2):
        self.states = states
        self.q: "queue.Queue[Optional[ModelState]]" = queue.Queue(maxsize=max_pending)
        self.results: "queue.Queue[Tuple[int, Any]]" = queue.Queue()
        self.stall = 0.0
        self._thread = threading.Thread(target=self._run, name="nasrun-state-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            ms = self.q.get()
            try:
                if ms is None:
                    return
                try:
                    self.results.put((ms.trial_id, self.states.write(ms)))
                except Exception as e:  # noqa: BLE001 - reported to the trainer, which fails the trial
                    self.results.put((ms.trial_id, f"{type(e).__name__}: {e}"))
            finally:
                self.q.task_done()

    def submit(self, ms: ModelState) -> None:
        t0 = time.perf_counter()
        self.q.put(ms)
        self.stall += time.perf_counter() - t0

    def done(self) -> List[Tuple[int, Any]]:
        out = []
        while True:
            try:
                out.append(self.results.get_nowait())
            except queue.Empty:
                return out

    def wait(self) -> List[Tuple[int, Any]]:
        self.q.join()
        return self.done()

    def close(self) -> None:
        self.q.put(None)
        self._thread.join()
