"""The HDF5 store: one main file per experiment, generations switched atomically.

Files (``experiment.h5`` is the default name, see :func:`nasrun.store.open_store`)::

    experiment.h5            newest generation (main file)
    experiment.h5.1, .2 ...  older generations, ``generations - 1`` of them (spec:
                             checkpoint.generations, default 2 = newest + one older)
    experiment.weights/      one HDF5 file per saved ModelState, written once, shared by the
                             generations that reference it, deleted when none does

Main file layout (plain h5py / ``h5ls -r`` / ``h5dump`` read it; JSON is UTF-8 text)::

    /  attrs: format="nasrun-experiment", format_version, nasrun_version, spec (the YAML text),
              generation (1, 2, ... per save), saved_at (Unix time), metric, mode, checksum
    /trials/<column>   parallel 1-D datasets, one row per trial, in trial order:
        id int64, config (JSON), budget (JSON: null or a number), resume_from int64 (-1: none),
        info (JSON), status ("queued"/"running"/"done"/"failed"), outcome ("", "done" or
        "failed": the Outcome's status, "" when there is none), metric float64 (the objective's
        metric, NaN when missing), metrics (JSON), curve (JSON list), error (text, "" = none),
        start/end float64 (Unix time, NaN = none), group int64 (-1 = none), job_id (text)
    /strategy/state    the strategy's state_dict() as JSON (see nasrun.store.codec), its arrays
    /strategy/arrays/<i>      as datasets referenced from the JSON by index
    /runtime/state, /runtime/arrays/<i>   the runtime state, same encoding
    /models/<trial_id> attrs: epoch, file (in experiment.weights/), checksum, nbytes, tensors

Model file layout: attrs format="nasrun-model-state", trial_id, epoch, tensor_names (JSON list,
in order), checksum; ``/tensors/<name>`` one contiguous dataset per tensor (dtype and shape kept;
"/" in a name is written %2F), ``/meta`` JSON and ``/meta_arrays/<i>``. Tensors are neither
chunked nor compressed: trained float weights barely compress and gzip runs at a few tens of
MB/s, far below the disk (see bench/checkpoint.py).

Why separate model files: a search keeps several in-flight models and checkpoints every minute
or every finished trial; rewriting every model at every save costs a full write of all of them
(1.2 GB for one 100M-parameter model with Adam state) while most did not change. A ModelState is
the state after a given epoch, so a model file is written once per (trial, epoch) and referenced
by name and checksum from every generation that needs it; a save then writes only new states and
a small main file, and ``nasrun status`` reads only the small main file.

Crash safety: a save writes new model files (``*.tmp``, fsync, rename), then the main file as
``experiment.h5.tmp`` (flush, fsync), rotates the generations by renames and renames the tmp file
over ``experiment.h5`` (atomic), then fsyncs the directory and deletes model files no kept
generation references. The rename is the commit point: a kill at any instant leaves the new
generation or the previous one complete under some ``experiment.h5[.N]`` name (the generation
number inside, not the name, orders them), plus leftovers that the next save removes. Every file
carries a checksum of its content (:mod:`nasrun.store.integrity`); ``load()`` verifies the newest
generation and its model files and falls back to the newest good one with a
:class:`CheckpointWarning`, and raises :class:`~nasrun.errors.CheckpointError` naming every file
and its fault when none is usable. Readers open files read-only without HDF5 file locks and never
touch the tmp file, so they never block the writer (a renamed-over file stays readable through an
open handle).
"""
from __future__ import annotations

import functools
import json
import math
import os
import re
import time
import warnings
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import quote

import h5py
import numpy as np

from ..errors import CheckpointError
from ..trial import Outcome, Suggestion
from . import codec
from .base import ModelState, Snapshot, Store, TrialRecord
from .integrity import Writer, verify

MAIN_FORMAT = "nasrun-experiment"
MODEL_FORMAT = "nasrun-model-state"
FORMAT_VERSION = 1
FILE_NAME = "experiment.h5"


class CheckpointWarning(UserWarning):
    """A newer generation was unusable and an older one was used."""


class _Bad(Exception):
    """Why one generation file cannot be used."""


@functools.lru_cache(maxsize=8)  # every save asks; the spec text of a run does not change
def _objective(spec_text: str) -> Tuple[str, str]:
    """The objective's metric and mode from the spec text (defaults when it does not say)."""
    import yaml
    try:
        obj = (yaml.safe_load(spec_text) or {}).get("objective") or {}
        first = (obj.get("objectives") or [None])[0]
        obj = first if isinstance(first, dict) else obj  # several objectives: the first is the main one
        return str(obj.get("metric", "valid_accuracy")), str(obj.get("mode", "max"))
    except Exception:
        return "valid_accuracy", "max"


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open_read(path: str) -> h5py.File:
    return h5py.File(path, "r", locking=False)


def _key(name: str) -> str:
    """A tensor name as an HDF5 link name (injective: '%' and '/' are escaped)."""
    k = quote(name, safe=" ._-:+()[]{},;=")
    return {"": "%00", ".": "%2E", "..": "%2E%2E"}.get(k, k)


def _nan(x: Optional[float]) -> float:
    return float("nan") if x is None else float(x)


def _none(x: float) -> Optional[float]:
    return None if math.isnan(x) else float(x)


def _signature(ms: ModelState) -> Tuple[Any, ...]:
    """What identifies a model state without reading its bytes (see ModelState)."""
    shapes = tuple((n, np.asarray(t).dtype.str, np.asarray(t).shape) for n, t in ms.tensors.items())
    return ms.trial_id, ms.epoch, shapes, codec.encode(ms.meta)[0]


class HDF5Store(Store):
    """Snapshots of one experiment in ``path`` (the main file; see the module docstring).

    ``generations`` is how many generations are kept on disk (the newest included, >= 1).
    Warnings raised by ``load()`` are also kept in ``self.warnings``.
    """

    def __init__(self, path: str, generations: int = 2):
        if generations < 1:
            raise ValueError("generations must be at least 1")
        self.path = os.path.abspath(path)
        self.dir = os.path.dirname(self.path)
        stem = re.sub(r"\.\d+$", "", os.path.basename(self.path))  # experiment.h5.1 -> experiment.h5
        stem = stem[:-3] if stem.endswith(".h5") else stem
        self.weights_dir = os.path.join(self.dir, stem + ".weights")
        self.generations = generations
        self.generation: Optional[int] = None  # the newest generation saved or loaded
        self.loaded_from: Optional[str] = None
        self.warnings: List[str] = []
        self._refs: Dict[int, Dict[str, Any]] = {}  # trial id -> model file of the last generation
        self._bad: set = set()

    # -- files -------------------------------------------------------------------------------
    def generation_files(self) -> List[str]:
        """The existing generation files: the main file first, then ``.1``, ``.2``..."""
        pat = re.compile(re.escape(os.path.basename(self.path)) + r"\.(\d+)$")
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        older = sorted((int(m.group(1)), n) for n in names for m in [pat.match(n)] if m)
        files = [os.path.join(self.dir, n) for _, n in older]
        return ([self.path] if os.path.exists(self.path) else []) + files

    @staticmethod
    def _generation_of(path: str) -> int:
        try:
            with _open_read(path) as f:
                return int(f.attrs["generation"])
        except Exception:
            return -1

    def _newest_first(self, files: List[str]) -> List[str]:
        """``files`` by generation, newest first; a file whose generation cannot be read is
        placed by its name (just after the file named before it), so it is tried and reported."""
        rank: Dict[str, float] = {}
        prev = math.inf
        for p in files:
            g = self._generation_of(p)
            prev = rank[p] = float(g) if g >= 0 else prev - 0.5
        return sorted(files, key=lambda p: -rank[p])

    # -- load ----------------------------------------------------------------------------------
    def load(self, models: bool = True) -> Optional[Snapshot]:
        """The newest good snapshot (see :class:`~nasrun.store.Store`).

        ``models=False`` skips the model files (what ``nasrun status`` needs): faster, and the
        returned snapshot has no ``models``.
        """
        for _attempt in range(3):
            files = self.generation_files()
            if not files:
                return None
            order = self._newest_first(files)
            problems: List[str] = []
            vanished = False
            for p in order:
                try:
                    snap, refs, gen = self._read(p, models)
                except FileNotFoundError:
                    vanished = True  # rotated away by a writer between listing and opening
                    continue
                except _Bad as e:
                    problems.append(f"{p}: {e}")
                    self._bad.add(p)
                    continue
                if problems:
                    msg = (f"using checkpoint {p} (generation {gen}); newer ones are unusable:\n  "
                           + "\n  ".join(problems))
                    self.warnings.append(msg)
                    warnings.warn(msg, CheckpointWarning, stacklevel=2)
                self.generation = max(gen, self.generation or 0)
                self.loaded_from = p
                if models:
                    self._refs = refs
                return snap
            if not vanished:
                break
        raise CheckpointError(f"no usable checkpoint for {self.path}:\n  " + "\n  ".join(problems)
                              + "\nremove or move these files to start afresh")

    def _read(self, path: str, models: bool) -> Tuple[Snapshot, Dict[int, Dict[str, Any]], int]:
        if not os.path.exists(path):
            raise FileNotFoundError(path)
        if os.path.getsize(path) == 0:
            raise _Bad("empty file (0 bytes)")
        try:
            if not h5py.is_hdf5(path):
                raise _Bad("not an HDF5 file")
            with _open_read(path) as f:
                fmt = f.attrs.get("format")
                if fmt is None:
                    raise _Bad("an HDF5 file without nasrun's 'format' attribute: not a nasrun "
                               "checkpoint")
                if fmt != MAIN_FORMAT:
                    raise _Bad(f"format attribute is {fmt!r}, expected {MAIN_FORMAT!r}")
                version = int(f.attrs.get("format_version", 0))
                if version > FORMAT_VERSION:
                    raise _Bad(f"format version {version} was written by a newer nasrun "
                               f"(this one reads up to {FORMAT_VERSION})")
                try:
                    values = verify(f)
                except ValueError as e:
                    raise _Bad(str(e)) from None
                snap = self._snapshot(dict(f.attrs), values)
                refs = {int(k): dict(g.attrs) for k, g in f["models"].items()}
                gen = int(f.attrs["generation"])
        except (_Bad, FileNotFoundError):
            raise
        except Exception as e:  # h5py/HDF5 raise OSError, KeyError, ValueError... on damage
            raise _Bad(f"unreadable ({type(e).__name__}: {e})") from None
        if models:
            for tid, ref in sorted(refs.items()):
                ms = self._read_model(tid, ref)
                snap.models[tid] = ms
                ref["signature"] = _signature(ms)
        return snap, refs, gen

    def _snapshot(self, attrs: Dict[str, Any], v: Dict[str, Any]) -> Snapshot:
        col = lambda name: v[f"/trials/{name}"]  # noqa: E731
        trials = []
        for i in range(len(col("id"))):
            sug = Suggestion(int(col("id")[i]), json.loads(col("config")[i]),
                             json.loads(col("budget")[i]),
                             None if col("resume_from")[i] < 0 else int(col("resume_from")[i]),
                             json.loads(col("info")[i]))
            outcome = None
            if col("outcome")[i]:
                outcome = Outcome(sug.trial_id, col("outcome")[i], json.loads(col("metrics")[i]),
                                  tuple(json.loads(col("curve")[i])), col("error")[i] or None)
            trials.append(TrialRecord(sug, col("status")[i], outcome,
                                      None if col("group")[i] < 0 else int(col("group")[i]),
                                      _none(col("start")[i]), _none(col("end")[i]),
                                      col("job_id")[i] or None))
        return Snapshot(str(attrs["spec"]), str(attrs["nasrun_version"]), trials,
                        self._decode(v, "/strategy"), self._decode(v, "/runtime"), {})

    @staticmethod
    def _decode(v: Dict[str, Any], group: str) -> Any:
        arrays = []
        while f"{group}/arrays/{len(arrays)}" in v:
            arrays.append(v[f"{group}/arrays/{len(arrays)}"])
        return codec.decode(v[f"{group}/state"], arrays)

    def _read_model(self, tid: int, ref: Dict[str, Any]) -> ModelState:
        path = os.path.join(self.weights_dir, str(ref["file"]))
        where = f"model state of trial {tid} ({path})"
        if not os.path.exists(path):
            raise _Bad(f"{where} is missing")
        try:
            with _open_read(path) as f:
                if f.attrs.get("format") != MODEL_FORMAT:
                    raise _Bad(f"{where}: not a nasrun model state file")
                try:
                    values = verify(f)
                except ValueError as e:
                    raise _Bad(f"{where}: {e}") from None
                if f.attrs["checksum"] != ref["checksum"]:
                    raise _Bad(f"{where}: checksum differs from the one the experiment recorded")
                names = json.loads(f.attrs["tensor_names"])
                tensors = {n: values[f"/tensors/{_key(n)}"] for n in names}
                arrays = []
                while f"/meta_arrays/{len(arrays)}" in values:
                    arrays.append(values[f"/meta_arrays/{len(arrays)}"])
                meta = codec.decode(values["/meta"], arrays)
                return ModelState(int(f.attrs["trial_id"]), int(f.attrs["epoch"]), tensors, meta)
        except _Bad:
            raise
        except Exception as e:
            raise _Bad(f"{where}: unreadable ({type(e).__name__}: {e})") from None

    # -- save ----------------------------------------------------------------------------------
    def save(self, snapshot: Snapshot) -> None:
        os.makedirs(self.dir, exist_ok=True)
        if self.generation is None:
            self.generation = max([self._generation_of(p) for p in self.generation_files()] + [0])
        gen = self.generation + 1
        refs: Dict[int, Dict[str, Any]] = {}
        wrote_models = False
        for tid, ms in sorted(snapshot.models.items()):
            sig = _signature(ms)
            old = self._refs.get(tid)
            if (old is not None and old.get("signature") == sig
                    and os.path.exists(os.path.join(self.weights_dir, old["file"]))):
                refs[tid] = old
            else:
                refs[tid] = self._write_model(ms, gen, sig)
                wrote_models = True
        if wrote_models:
            _fsync_path(self.weights_dir)
        tmp = self.path + ".tmp"
        self._write_main(tmp, snapshot, refs, gen)
        _fsync_path(tmp)
        self._rotate(tmp)
        _fsync_path(self.dir)
        self.generation = gen
        self._refs = refs
        self._prune_models()

    def _write_main(self, tmp: str, snap: Snapshot, refs: Dict[int, Dict[str, Any]], gen: int) -> None:
        metric, mode = _objective(snap.spec_text)
        with h5py.File(tmp, "w", locking=False) as f:
            w = Writer(f)
            for k, val in [("format", MAIN_FORMAT), ("format_version", FORMAT_VERSION),
                           ("nasrun_version", snap.version), ("spec", snap.spec_text),
                           ("generation", gen), ("saved_at", time.time()), ("metric", metric),
                           ("mode", mode)]:
                w.attr("/", k, val)
            ts = snap.trials
            out = [t.outcome for t in ts]
            w.array("/trials/id", np.array([t.trial_id for t in ts], dtype=np.int64))
            w.texts("/trials/config", [json.dumps(dict(t.suggestion.config)) for t in ts])
            w.texts("/trials/budget", [json.dumps(t.suggestion.budget) for t in ts])
            w.array("/trials/resume_from", np.array(
                [-1 if t.suggestion.resume_from is None else t.suggestion.resume_from for t in ts],
                dtype=np.int64))
            w.texts("/trials/info", [json.dumps(dict(t.suggestion.info)) for t in ts])
            w.texts("/trials/status", [t.status for t in ts])
            w.texts("/trials/outcome", [o.status if o else "" for o in out])
            w.array("/trials/metric", np.array([_nan(o.value(metric)) if o else math.nan for o in out],
                                               dtype=np.float64))
            w.texts("/trials/metrics", [json.dumps(dict(o.metrics)) if o else "{}" for o in out])
            w.texts("/trials/curve", [json.dumps([dict(c) for c in o.curve]) if o else "[]" for o in out])
            w.texts("/trials/error", [(o.error or "") if o else "" for o in out])
            w.array("/trials/start", np.array([_nan(t.start) for t in ts], dtype=np.float64))
            w.array("/trials/end", np.array([_nan(t.end) for t in ts], dtype=np.float64))
            w.array("/trials/group", np.array([-1 if t.group is None else t.group for t in ts],
                                              dtype=np.int64))
            w.texts("/trials/job_id", [t.job_id or "" for t in ts])
            for group, obj in [("/strategy", snap.strategy_state), ("/runtime", snap.runtime_state)]:
                text, arrays = codec.encode(obj, group[1:] + "_state")
                w.text(f"{group}/state", text)
                f.require_group(f"{group}/arrays")
                for i, a in enumerate(arrays):
                    w.array(f"{group}/arrays/{i}", a)
            f.require_group("/models")
            for tid, ref in refs.items():
                for k in ("epoch", "file", "checksum", "nbytes", "tensors"):
                    w.attr(f"/models/{tid}", k, ref[k])
            w.seal()

    def _write_model(self, ms: ModelState, gen: int, sig: Tuple[Any, ...]) -> Dict[str, Any]:
        os.makedirs(self.weights_dir, exist_ok=True)
        name = f"trial{ms.trial_id:06d}-epoch{ms.epoch:04d}-g{gen:06d}.h5"
        final = os.path.join(self.weights_dir, name)
        tmp = final + ".tmp"
        names = list(ms.tensors)
        nbytes = 0
        with h5py.File(tmp, "w", locking=False) as f:
            w = Writer(f)
            for k, val in [("format", MODEL_FORMAT), ("format_version", FORMAT_VERSION),
                           ("trial_id", ms.trial_id), ("epoch", ms.epoch),
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
        _fsync_path(tmp)
        os.replace(tmp, final)
        return {"epoch": ms.epoch, "file": name, "checksum": checksum, "nbytes": nbytes,
                "tensors": len(names), "signature": sig}

    def _rotate(self, tmp: str) -> None:
        """Keep the newest ``generations - 1`` good files as .1, .2...; commit ``tmp`` as main."""
        files = self.generation_files()
        gen = {p: (-1 if p in self._bad else self._generation_of(p)) for p in files}
        keep = sorted((p for p in files if gen[p] >= 0), key=lambda p: -gen[p])[: self.generations - 1]
        for p in files:
            if p not in keep:
                if gen[p] < 0:
                    os.replace(p, self.path + ".bad")  # keep the last bad one for inspection
                else:
                    os.remove(p)
        pending = {p: f"{self.path}.{i + 1}" for i, p in enumerate(keep)}
        pending = {s: d for s, d in pending.items() if s != d}
        while pending:
            for s, d in pending.items():
                if d not in pending:
                    os.replace(s, d)
                    del pending[s]
                    break
            else:  # a cycle (only after odd manual renames): park one file aside first
                s, d = next(iter(pending.items()))
                os.replace(s, s + ".rot")
                del pending[s]
                pending[s + ".rot"] = d
        os.replace(tmp, self.path)
        self._bad.clear()

    def _prune_models(self) -> None:
        if not os.path.isdir(self.weights_dir):
            return
        used = {r["file"] for r in self._refs.values()}
        for p in self.generation_files():
            try:
                with _open_read(p) as f:
                    used.update(str(g.attrs["file"]) for g in f["models"].values())
            except Exception:
                pass
        for n in os.listdir(self.weights_dir):
            if n not in used:
                os.remove(os.path.join(self.weights_dir, n))


def open_store(path_or_dir: str, generations: int = 2) -> HDF5Store:
    """The store at a path: an existing directory, or a path that does not exist and does not end
    in ``.h5``/``.hdf5``, means ``<dir>/experiment.h5``; anything else is the main file itself."""
    p = os.path.expanduser(path_or_dir)
    if os.path.isdir(p) or not (os.path.exists(p) or p.endswith((".h5", ".hdf5"))):
        p = os.path.join(p, FILE_NAME)
    return HDF5Store(p, generations)
