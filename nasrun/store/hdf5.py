"""The HDF5 store: a small main file committed atomically, immutable segments, an event journal.

Files of an experiment (``experiment`` is the default stem, see :func:`open_store`)::

    experiment.h5              main file, newest generation (small: O(live trials + segments))
    experiment.h5.1, .2 ...    older generations (checkpoint.generations - 1 of them)
    experiment.segments/       immutable files: seg-*.h5 (finished trials), strategy-*.h5
    experiment.journal/        <generation>.log: the events logged after that generation
    experiment.weights/        model states, written by the worker groups (nasrun.store.states)
    experiment.lock            the writer's lock (nasrun.store.lock)

Main file (plain h5py / ``h5ls -r`` reads it; JSON is UTF-8 text)::

    / attrs: format="nasrun-experiment", format_version=2, nasrun_version, spec (YAML text),
             generation, saved_at (Unix time), metric, mode, journal (the journal file that
             continues this generation), counters (JSON: next_seq, next_id, finished, failed,
             consecutive_failures, elapsed, jobs), strategy_file, strategy_checksum,
             strategy_seq, checksum
    /segments        JSON list of {"file", "checksum", "rows", "level"}, oldest first
    /live/<column>   the trials in flight or queued (columns: nasrun.store.columns)
    /refs            JSON {trial id: [model state references]}
    /runtime/state, /runtime/arrays/<i>   rank 0's runtime state (nasrun.store.codec)

Segment ``seg-*.h5``: attrs format="nasrun-segment", rows, level, checksum; ``/trials/<column>``
holds finished trials, which never change. Strategy file ``strategy-*.h5``: attrs
format="nasrun-strategy", seq (the snapshot follows strategy call ``seq``), checksum;
``/state`` + ``/arrays/<i>`` (the strategy's state_dict, nasrun.store.codec).

The whole trials table = the rows of every segment listed in the newest main file, in order,
then ``/live``; the events in the journal since then (at most ``every_seconds`` of a running
job; none after a run ends) are folded in by ``load()``.

A save costs what changed: ``log()`` appends one journal record (a finished trial is logged
before its group gets new work); ``commit()`` writes one segment with the trials finished since
the previous commit, a strategy snapshot when one is due, and the small main file. Segments are
merged by size tier (``fanin`` segments of one level become one of the next level), so a table
of N trials lives in O(fanin log N) files and each row is rewritten O(log N) times.

Crash safety: new files get unique temporary names (created exclusively: a planted symlink is
never followed), are fsynced and renamed into place; the main file is committed by renaming it
over ``experiment.h5`` after rotating the older generations (the commit point), then the
directory is fsynced and the next journal file opened. A kill at any instant leaves a complete
generation plus journal records that load() applies; leftovers (unreferenced segments,
temporary files) are removed by the next commit. Every file carries checksums
(:mod:`nasrun.store.integrity`); ``load()`` falls back to the newest generation that verifies
(with a :class:`CheckpointWarning`), replays the journals from that generation on, and raises
:class:`~nasrun.errors.CheckpointError` naming each file and its fault when nothing verifies.
Readers open files read-only without HDF5 file locks and never touch temporary files.
"""
from __future__ import annotations

import json
import math
import os
import re
import stat
import time
import warnings
from types import TracebackType
from typing import Any, Dict, List, Optional, Set, Tuple, Type

import h5py
import numpy as np

from ..errors import CheckpointError, StorageError
from . import codec, columns
from .base import Loaded, StateRef, Store
from .events import from_json, to_json
from .integrity import Writer, verify
from .journal import Journal, read_records
from .lock import WriterLock
from .state import EventError, ExperimentState, TrialTable
from .states import FileStates, exclusive_tmp, fsync_dir

MAIN_FORMAT = "nasrun-experiment"
SEGMENT_FORMAT = "nasrun-segment"
STRATEGY_FORMAT = "nasrun-strategy"
FORMAT_VERSION = 2
FILE_NAME = "experiment.h5"
FANIN = 8


class CheckpointWarning(UserWarning):
    """A newer generation (or part of the journal) was unusable and an older state was used."""


class _Bad(Exception):
    """Why one file cannot be used."""


def _short(e: Exception) -> str:
    """An h5py/HDF5 error's reason without its dump of internals."""
    text = str(e)
    for key in ("error message = '", "errno = "):
        if key in text:
            rest = text.split(key, 1)[1]
            return rest.split("'", 1)[0] if key.endswith("'") else "errno " + rest.split(",", 1)[0]
    return text.splitlines()[0][:200] if text else type(e).__name__


class _InMemory:
    """Build an HDF5 file in memory, then write its bytes to ``path`` with plain os.write
    (one clear OSError when the disk is full or read-only; HDF5 never sees a failed write)."""

    def __init__(self, path: str):
        self.path = path

    def __enter__(self) -> h5py.File:
        self.f = h5py.File(f"{self.path}.mem", "w", driver="core", backing_store=False)
        return self.f

    def __exit__(self, kind: Optional[Type[BaseException]], value: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        try:
            if kind is None:
                self.f.flush()
                data = self.f.id.get_file_image()
        finally:
            self.f.close()
        if kind is None:
            fd = os.open(self.path, os.O_WRONLY | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0))
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _regular(path: str) -> None:
    """FileNotFoundError when missing; _Bad when not a regular file (a FIFO would hang a reader)."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise _Bad("not a regular file")
    if st.st_size == 0:
        raise _Bad("empty file (0 bytes)")


def _open_read(path: str) -> h5py.File:
    _regular(path)
    if not h5py.is_hdf5(path):
        raise _Bad("not an HDF5 file")
    return h5py.File(path, "r", locking=False)


def _read_verified(path: str, fmt: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(attributes, dataset values by path) of a checksummed nasrun file of format ``fmt``."""
    try:
        with _open_read(path) as f:
            found = f.attrs.get("format")
            if found is None:
                raise _Bad("an HDF5 file without nasrun's 'format' attribute: not a nasrun checkpoint")
            if found != fmt:
                raise _Bad(f"format attribute is {found!r}, expected {fmt!r}")
            version = int(f.attrs.get("format_version", 0))
            if version > FORMAT_VERSION:
                raise _Bad(f"format version {version} was written by a newer nasrun "
                           f"(this one reads up to {FORMAT_VERSION})")
            if version < FORMAT_VERSION:
                raise _Bad(f"format version {version} was written by an older nasrun (this one "
                           f"reads version {FORMAT_VERSION}); finish it with that version")
            try:
                values = verify(f)
            except ValueError as e:
                raise _Bad(str(e)) from None
            attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
            return attrs, values
    except (_Bad, FileNotFoundError):
        raise
    except RecursionError:
        raise _Bad("unreadable (nested too deeply)") from None
    except Exception as e:  # h5py/HDF5 raise OSError, KeyError, ValueError... on damage
        raise _Bad(f"unreadable ({type(e).__name__}: {e})") from None


def _sub(values: Dict[str, Any], prefix: str) -> Dict[str, Any]:
    n = len(prefix)
    return {k[n:]: v for k, v in values.items() if k.startswith(prefix)}


def _write_block(w: Writer, prefix: str, block: Dict[str, Any]) -> None:
    for k, v in block.items():
        if isinstance(v, str):
            w.text(f"{prefix}/{k}", v)
        else:
            w.array(f"{prefix}/{k}", np.asarray(v))


def _decode_state(values: Dict[str, Any], group: str) -> Any:
    arrays: List[np.ndarray] = []
    while f"{group}/arrays/{len(arrays)}" in values:
        arrays.append(values[f"{group}/arrays/{len(arrays)}"])
    return codec.decode(values[f"{group}/state"], arrays)


def _json_attr(attrs: Dict[str, Any], key: str) -> Any:
    v = attrs[key]
    return json.loads(v.decode() if isinstance(v, bytes) else str(v))


class HDF5Store(Store):
    """One experiment in ``path`` (its main file; see the module docstring).

    ``generations`` main files are kept on disk (the newest included, >= 1). Warnings of
    ``load()`` are also kept in ``self.warnings``.
    """

    def __init__(self, path: str, generations: int = 2, fanin: Optional[int] = None):
        if generations < 1:
            raise ValueError("generations must be at least 1")
        self.path = os.path.abspath(path)
        self.dir = os.path.dirname(self.path)
        stem = re.sub(r"\.\d+$", "", os.path.basename(self.path))  # experiment.h5.1 -> .h5
        self.base = stem
        stem = stem[:-3] if stem.endswith(".h5") else stem
        self.weights_dir = os.path.join(self.dir, stem + ".weights")
        self.segments_dir = os.path.join(self.dir, stem + ".segments")
        self.journal_dir = os.path.join(self.dir, stem + ".journal")
        self.lock = WriterLock(os.path.join(self.dir, stem + ".lock"))
        self.states = FileStates(self.weights_dir)
        self.generations = generations
        self.fanin = int(fanin or os.environ.get("NASRUN_TEST_MERGE_FANIN") or FANIN)
        self.generation: Optional[int] = None  # the newest generation saved or loaded
        self.loaded_from: Optional[str] = None
        self.warnings: List[str] = []
        self.on_warning: Optional[Any] = None  # called with each load() warning (else warnings.warn)
        self.state = ExperimentState()
        self.segments: List[Dict[str, Any]] = []
        self.strategy_ref: Dict[str, Any] = {"file": "", "checksum": "", "seq": -1}
        self._journal: Optional[Journal] = None
        self._pending = 0
        self._dirty_dirs: Set[str] = set()
        self._kept: List[Dict[str, Any]] = []  # what the kept generations reference, newest first
        self._spec_text = ""
        self._version = ""
        self._metric, self._mode = "valid_accuracy", "max"
        self.timings: Dict[str, float] = {"commit": 0.0, "merge": 0.0, "log": 0.0}
        self.commits = 0
        self.merges = 0

    # -- files ---------------------------------------------------------------------------------
    def generation_files(self) -> List[str]:
        """The existing generation files: the main file first, then ``.1``, ``.2``..."""
        pat = re.compile(re.escape(self.base) + r"\.(\d+)$")
        try:
            names = os.listdir(self.dir)
        except (FileNotFoundError, NotADirectoryError):
            return []
        older = sorted((int(m.group(1)), n) for n in names for m in [pat.match(n)] if m)
        files = [os.path.join(self.dir, n) for _, n in older]
        main = os.path.join(self.dir, self.base)
        return ([main] if os.path.lexists(main) else []) + files

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

    def journal_files(self) -> List[Tuple[int, str]]:
        try:
            names = os.listdir(self.journal_dir)
        except (FileNotFoundError, NotADirectoryError):
            return []
        out = [(int(n[:-4]), os.path.join(self.journal_dir, n)) for n in names
               if n.endswith(".log") and n[:-4].isdigit()]
        return sorted(out)

    # -- load ----------------------------------------------------------------------------------
    def load(self) -> Optional[Loaded]:
        """The newest good state (see :class:`~nasrun.store.base.Store`)."""
        for _attempt in range(3):
            files = self.generation_files()
            if not files:
                if self.journal_files():
                    raise CheckpointError(f"{self.path}: the experiment's journal exists but no "
                                          "main file does (was it deleted?)")
                return None
            problems: List[str] = []
            vanished = False
            for p in self._newest_first(files):
                try:
                    loaded = self._read(p)
                except FileNotFoundError:
                    vanished = True  # rotated away by a writer between listing and opening
                    continue
                except _Bad as e:
                    problems.append(f"{p}: {e}")
                    continue
                if problems:
                    msg = (f"using checkpoint {p} (generation {loaded.generation}); newer ones are "
                           "unusable:\n  " + "\n  ".join(problems))
                    loaded.warnings.insert(0, msg)
                for msg in loaded.warnings:
                    self.warnings.append(msg)
                    if self.on_warning is not None:
                        self.on_warning(msg)
                    else:
                        warnings.warn(msg, CheckpointWarning, stacklevel=2)
                self.generation = max(loaded.generation, self.generation or 0)
                self.loaded_from = p
                return loaded
            if not vanished:
                break
        raise CheckpointError(f"no usable checkpoint for {self.path}:\n  " + "\n  ".join(problems)
                              + "\nremove or move these files to start afresh")

    def _read(self, path: str) -> Loaded:
        attrs, values = _read_verified(path, MAIN_FORMAT)
        try:
            gen = int(attrs["generation"])
            counters = _json_attr(attrs, "counters")
            segments = json.loads(values["/segments"])
            refs = {int(k): [StateRef.from_dict(r) for r in v]
                    for k, v in json.loads(values["/refs"]).items()}
            live = columns.Block(_sub(values, "/live/")).records()
            runtime = _decode_state(values, "/runtime")
            journal_from = int(attrs["journal"])
            strategy_ref: Dict[str, Any] = {"file": str(attrs["strategy_file"]),
                                            "checksum": str(attrs["strategy_checksum"]),
                                            "seq": int(attrs["strategy_seq"])}
            spec_text, version = str(attrs["spec"]), str(attrs["nasrun_version"])
            if not isinstance(segments, list) or not isinstance(runtime, dict):
                raise ValueError("segments or runtime state malformed")
        except _Bad:
            raise
        except RecursionError:
            raise _Bad("malformed content (nested too deeply)") from None
        except Exception as e:
            raise _Bad(f"malformed content ({type(e).__name__}: {e})") from None
        state = ExperimentState()
        try:
            state.set_counters(counters)
        except Exception as e:
            raise _Bad(f"malformed counters ({type(e).__name__}: {e})") from None
        state.refs = refs
        state.live = {r.trial_id: r for r in live}
        table = TrialTable()
        for seg in segments:
            try:
                name = str(seg["file"])
                if os.path.basename(name) != name:
                    raise _Bad(f"segment name {name!r} is not a file name")
                seg_path = os.path.join(self.segments_dir, name)
                sattrs, svalues = _read_verified(seg_path, SEGMENT_FORMAT)
                if str(sattrs["checksum"]) != str(seg["checksum"]):
                    raise _Bad(f"segment {seg_path} is not the one this generation recorded")
                table.add(columns.Block(_sub(svalues, "/trials/")))
            except FileNotFoundError:
                raise _Bad(f"segment {seg.get('file')} is missing") from None
            except _Bad as e:
                raise _Bad(f"segment {seg.get('file')}: {e}") from None
            except Exception as e:
                raise _Bad(f"segment {seg!r}: malformed ({type(e).__name__}: {e})") from None
        state.table = table
        strategy_state = None
        if strategy_ref["file"]:
            sp = os.path.join(self.segments_dir, os.path.basename(strategy_ref["file"]))
            try:
                sattrs, svalues = _read_verified(sp, STRATEGY_FORMAT)
                if str(sattrs["checksum"]) != strategy_ref["checksum"]:
                    raise _Bad("not the snapshot this generation recorded")
                strategy_state = _decode_state(svalues, "")
            except FileNotFoundError:
                raise _Bad(f"strategy snapshot {sp} is missing") from None
            except _Bad as e:
                raise _Bad(f"strategy snapshot {sp}: {e}") from None
            except Exception as e:
                raise _Bad(f"strategy snapshot {sp}: malformed ({type(e).__name__}: {e})") from None
        problems: List[str] = []
        for index, jpath in self.journal_files():
            if index < journal_from:
                continue
            records, problem = read_records(jpath)
            for i, rec in enumerate(records):
                try:
                    state.apply(from_json(rec))
                except (EventError, KeyError, TypeError, ValueError) as e:
                    problem = f"record {i + 1}: {e}"
                    break
            if problem is not None:
                problems.append(f"journal {jpath}: {problem}; the events after it are not used")
                break
        loaded = Loaded(spec_text, version, state, runtime, strategy_ref["seq"], strategy_state,
                        gen, float(attrs.get("saved_at", 0.0)), path, problems)
        loaded.segments = segments  # type: ignore[attr-defined]
        loaded.strategy_ref = strategy_ref  # type: ignore[attr-defined]
        return loaded

    # -- writing ---------------------------------------------------------------------------------
    def claim(self) -> None:
        try:
            os.makedirs(self.dir, exist_ok=True)
            self.lock.acquire()
        except OSError as e:
            raise StorageError(f"cannot create the experiment in {self.dir}: {e.strerror or e}") from None

    def begin(self, spec_text: str, version: str, loaded: Optional[Loaded], metric: str = "valid_accuracy",
              mode: str = "max") -> None:
        self.claim()
        try:
            for d in (self.segments_dir, self.journal_dir, self.weights_dir):
                os.makedirs(d, exist_ok=True)
        except OSError as e:
            raise StorageError(f"cannot create the experiment in {self.dir}: {e.strerror or e}") from None
        self._spec_text, self._version, self._metric, self._mode = spec_text, version, metric, mode
        if loaded is not None:
            self.state = loaded.state
            self.segments = list(getattr(loaded, "segments", []))
            self.strategy_ref = dict(getattr(loaded, "strategy_ref", self.strategy_ref))
        known = [self._generation_of(p) for p in self.generation_files()]
        known += [i for i, _ in self.journal_files()]
        self.generation = max(known + [self.generation or 0, loaded.generation if loaded else 0])

    def log(self, event: Any) -> None:
        t0 = time.perf_counter()
        self.state.apply(event)
        if self._journal is None:
            raise RuntimeError("commit() once before log(): the first commit opens the journal")
        try:
            self._journal.append(to_json(event))
        except OSError as e:
            raise StorageError(self._io_problem("append to the journal", e)) from None
        self._pending += 1
        self.timings["log"] += time.perf_counter() - t0

    @property
    def pending_events(self) -> int:
        return self._pending

    def sync(self) -> None:
        if self._journal is not None:
            try:
                self._journal.sync()
            except OSError as e:
                raise StorageError(self._io_problem("fsync the journal", e)) from None

    def _io_problem(self, what: str, e: Exception) -> str:
        good = f" (generation {self.generation})" if self.generation else ""
        why = getattr(e, "strerror", None) or _short(e)
        return (f"cannot {what} in {self.dir}: {why}. What was written before is "
                f"intact: the last good checkpoint{good} and the journal up to this event; "
                "free space / fix permissions and `nasrun resume` the experiment")

    def commit(self, runtime: Dict[str, Any],
               strategy: Optional[Tuple[int, Dict[str, Any]]] = None) -> None:
        t0 = time.perf_counter()
        try:
            self._commit(runtime, strategy)
        except (OSError, RuntimeError) as e:  # h5py reports failed writes as RuntimeError too
            raise StorageError(self._io_problem("write the checkpoint", e)) from None
        self.timings["commit"] += time.perf_counter() - t0
        self.commits += 1

    def _commit(self, runtime: Dict[str, Any], strategy: Optional[Tuple[int, Dict[str, Any]]]) -> None:
        gen = (self.generation or 0) + 1
        st = self.state
        if st.fresh:
            block = columns.encode(st.fresh, self._metric)
            self.segments.append(self._write_segment(block, 0, gen))
            self._merge(gen)
        if strategy is not None:
            seq, sd = strategy
            self.strategy_ref = {**self._write_strategy(sd, seq, gen), "seq": int(seq)}
        for d in sorted(self._dirty_dirs):  # the new segments are durable before the commit
            fsync_dir(d)
        self._dirty_dirs.clear()
        tmp = exclusive_tmp(self.dir, self.base)
        try:
            self._write_main(tmp, runtime, gen)
            _fsync_path(tmp)
            self._rotate(tmp)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        fsync_dir(self.dir)
        self.generation = gen
        if self._journal is not None:
            self._journal.close(sync=False)  # what it holds is in the committed generation now
        self._journal = Journal(os.path.join(self.journal_dir, f"{gen:010d}.log"))
        self._kept.insert(0, {"gen": gen, "journal": gen,
                              "files": {s["file"] for s in self.segments} | {self.strategy_ref["file"]}})
        del self._kept[self.generations:]
        st.fresh = []
        if st.table is not None:
            st.forget_table()  # the writer needs no committed rows in memory
        self._pending = 0
        self._prune()
        self.lock.refresh()

    def _write_segment(self, block: Dict[str, Any], level: int, gen: int,
                       prefix: str = "seg") -> Dict[str, Any]:
        tmp = exclusive_tmp(self.segments_dir, prefix)
        try:
            with _InMemory(tmp) as f:
                w = Writer(f)
                for k, v in [("format", SEGMENT_FORMAT), ("format_version", FORMAT_VERSION),
                             ("rows", columns.rows(block)), ("level", level)]:
                    w.attr("/", k, v)
                _write_block(w, "/trials", block)
                checksum = w.seal()
            _fsync_path(tmp)
            name = f"seg-{gen:010d}-L{level}-{os.path.basename(tmp).split('.')[-2]}.h5"
            os.replace(tmp, os.path.join(self.segments_dir, name))
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        self._dirty_dirs.add(self.segments_dir)
        return {"file": name, "checksum": checksum, "rows": columns.rows(block), "level": level}

    def _merge(self, gen: int) -> None:
        """Size-tiered merging: ``fanin`` segments of one level (at the tail) become one."""
        level = 0
        while True:
            tail = [i for i, s in enumerate(self.segments) if int(s["level"]) == level]
            last = list(range(len(self.segments) - self.fanin, len(self.segments)))
            if len(tail) < self.fanin or tail[-self.fanin:] != last:
                return
            t0 = time.perf_counter()
            group = self.segments[-self.fanin:]
            blocks = []
            for s in group:
                _, values = _read_verified(os.path.join(self.segments_dir, s["file"]), SEGMENT_FORMAT)
                blocks.append(_sub(values, "/trials/"))
            merged = self._write_segment(columns.concat(blocks), level + 1, gen, prefix="merge")
            self.segments = self.segments[:-self.fanin] + [merged]
            self.merges += 1
            self.timings["merge"] += time.perf_counter() - t0
            level += 1

    def _write_strategy(self, sd: Dict[str, Any], seq: int, gen: int) -> Dict[str, Any]:
        text, arrays = codec.encode(sd, "strategy_state")
        tmp = exclusive_tmp(self.segments_dir, "strategy")
        try:
            with _InMemory(tmp) as f:
                w = Writer(f)
                for k, v in [("format", STRATEGY_FORMAT), ("format_version", FORMAT_VERSION),
                             ("seq", int(seq))]:
                    w.attr("/", k, v)
                w.text("/state", text)
                f.require_group("/arrays")
                for i, a in enumerate(arrays):
                    w.array(f"/arrays/{i}", a)
                checksum = w.seal()
            _fsync_path(tmp)
            name = f"strategy-{gen:010d}.h5"
            os.replace(tmp, os.path.join(self.segments_dir, name))
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        self._dirty_dirs.add(self.segments_dir)
        return {"file": name, "checksum": checksum}

    def _write_main(self, tmp: str, runtime: Dict[str, Any], gen: int) -> None:
        st = self.state
        with _InMemory(tmp) as f:
            w = Writer(f)
            for k, val in [("format", MAIN_FORMAT), ("format_version", FORMAT_VERSION),
                           ("nasrun_version", self._version), ("spec", self._spec_text),
                           ("generation", gen), ("saved_at", time.time()), ("metric", self._metric),
                           ("mode", self._mode), ("journal", gen),
                           ("counters", json.dumps(st.counters())),
                           ("strategy_file", self.strategy_ref["file"]),
                           ("strategy_checksum", self.strategy_ref["checksum"]),
                           ("strategy_seq", int(self.strategy_ref["seq"]))]:
                w.attr("/", k, val)
            w.text("/segments", json.dumps(self.segments))
            live = sorted(st.live.values(), key=lambda r: r.trial_id)
            _write_block(w, "/live", columns.encode(live, self._metric))
            w.text("/refs", json.dumps({str(k): [r.to_dict() for r in v] for k, v in st.refs.items()}))
            text, arrays = codec.encode(runtime, "runtime_state")
            w.text("/runtime/state", text)
            f.require_group("/runtime/arrays")
            for i, a in enumerate(arrays):
                w.array(f"/runtime/arrays/{i}", a)
            w.seal()

    def _rotate(self, tmp: str) -> None:
        """Keep the newest ``generations - 1`` good files as .1, .2...; commit ``tmp`` as main."""
        main = os.path.join(self.dir, self.base)
        files = self.generation_files()
        gen = {p: self._generation_of(p) for p in files}
        keep = sorted((p for p in files if gen[p] >= 0), key=lambda p: -gen[p])[: self.generations - 1]
        for p in files:
            if p not in keep:
                if gen[p] < 0 and os.path.isfile(p) and not os.path.islink(p):
                    os.replace(p, main + ".bad")  # keep the last bad one for inspection
                else:
                    os.remove(p)
        pending = {p: f"{main}.{i + 1}" for i, p in enumerate(keep)}
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
        os.replace(tmp, main)

    def _prune(self) -> None:
        """Delete segments, snapshots and journals no kept generation needs, and leftovers."""
        if len(self._kept) < min(self.generations, len(self.generation_files())):
            self._kept = self._scan_kept()  # after a resume: read what the older files reference
        used = set().union(*(k["files"] for k in self._kept)) if self._kept else set()
        oldest_journal = min((k["journal"] for k in self._kept), default=self.generation or 0)
        for n in os.listdir(self.segments_dir):
            if n not in used:
                try:
                    os.remove(os.path.join(self.segments_dir, n))
                except FileNotFoundError:
                    pass
        for index, path in self.journal_files():
            if index < oldest_journal:
                os.remove(path)
        for n in os.listdir(self.dir):
            if n.startswith(f".{self.base}.") and n.endswith(".tmp"):
                try:
                    os.remove(os.path.join(self.dir, n))
                except FileNotFoundError:
                    pass

    def _scan_kept(self) -> List[Dict[str, Any]]:
        out: List[Dict[str, Any]] = []
        for p in self.generation_files():
            try:
                attrs, values = _read_verified(p, MAIN_FORMAT)
                files = {str(x["file"]) for x in json.loads(values["/segments"])}
                out.append({"gen": int(attrs["generation"]), "journal": int(attrs["journal"]),
                            "files": files | {str(attrs["strategy_file"])}})
            except Exception:
                continue
        out.sort(key=lambda k: -k["gen"])
        return out[: self.generations]

    def prune_states(self) -> int:
        """Delete model state files that no trial references (call when no group is writing:
        before the run starts or after it ended); how many were deleted."""
        keep = {r.file for refs in self.state.refs.values() for r in refs}
        n = 0
        try:
            names = os.listdir(self.weights_dir)
        except FileNotFoundError:
            return 0
        for name in names:
            if name not in keep and (name.endswith(".h5") or name.endswith(".tmp")):
                try:
                    os.remove(os.path.join(self.weights_dir, name))
                    n += 1
                except FileNotFoundError:
                    pass
        return n

    def close(self) -> None:
        try:
            if self._journal is not None:
                self._journal.close()
                self._journal = None
        finally:
            self.lock.release()


def open_store(path_or_dir: str, generations: int = 2) -> HDF5Store:
    """The store at a path: an existing directory, or a path that does not exist and does not end
    in ``.h5``/``.hdf5``, means ``<dir>/experiment.h5``; anything else is the main file itself."""
    p = os.path.expanduser(path_or_dir)
    if os.path.isdir(p) or not (os.path.lexists(p) or p.endswith((".h5", ".hdf5"))):
        p = os.path.join(p, FILE_NAME)
    return HDF5Store(p, generations)
