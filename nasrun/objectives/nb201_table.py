"""NAS-Bench-201 (CIFAR-10) as a tabular objective with simulated training time.

Two tables, same architectures in the same row order (see ``shared/benchmarks/README.md``):
``cifar10_200epochs.csv`` (valid/test accuracy after 200 epochs, ``train-all-time`` = seconds for
200 epochs) and ``cifar10_12epochs.csv`` (valid/test accuracy after 12 epochs).

Fidelity rule for a budget of ``e`` epochs (``None`` means 200): the accuracy is that of the
nearest *lower* available fidelity (12 or 200 epochs; below 12, the 12-epoch value, the lowest
there is), so an intermediate budget never sees information from a higher fidelity. Simulated
training time is linear in epochs: ``train-all-time * e / 200``. A trial with ``resume_from``
continues the earlier trial's training and is charged only the extra epochs.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import numpy as np

from ..errors import UserInputError
from ..space import nb201_arch_str
from ..trial import Outcome, Suggestion

FULL_EPOCHS = 200.0
LOW_EPOCHS = 12.0
NB201_ROWS = 5 ** 6
FILE_200 = "cifar10_200epochs.csv"
FILE_12 = "cifar10_12epochs.csv"
COLUMNS_200 = ("arch_str", "valid-accuracy", "test-accuracy", "train-all-time")
COLUMNS_12 = ("arch_str", "valid-accuracy", "test-accuracy")


@dataclass(frozen=True)
class NB201Table:
    """The two tables as arrays, indexed by row; ``row_of`` maps ``arch_str`` to its row."""

    path: str
    name: str  # the data set, e.g. "CIFAR-10" (from the table's file name)
    arch: Tuple[str, ...]
    row_of: Dict[str, int]
    valid200: np.ndarray
    test200: np.ndarray
    time200: np.ndarray
    valid12: np.ndarray
    test12: np.ndarray

    def row(self, config) -> int:
        """The table row of an nb201 configuration."""
        return self.row_of[nb201_arch_str(config)]

    def accuracy(self, row: int, epochs: float) -> Tuple[float, float]:
        """(valid, test) accuracy after ``epochs`` by the nearest-lower-fidelity rule."""
        if epochs >= FULL_EPOCHS:
            return float(self.valid200[row]), float(self.test200[row])
        return float(self.valid12[row]), float(self.test12[row])

    def seconds(self, row: int, epochs: float) -> float:
        return float(self.time200[row]) * epochs / FULL_EPOCHS


def default_nb201_dir() -> Path:
    """``../shared/benchmarks/nb201`` next to the repository root, else next to the cwd."""
    repo_root = Path(__file__).resolve().parents[2]
    candidates = [repo_root / ".." / "shared" / "benchmarks" / "nb201",
                  Path.cwd() / ".." / "shared" / "benchmarks" / "nb201"]
    for c in candidates:
        if c.is_dir():
            return c
    return candidates[0]


_CACHE: Dict[str, NB201Table] = {}


DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenet16-120": "ImageNet16-120",
                 "ImageNet16-120": "ImageNet16-120"}


def table_files(path: Union[str, os.PathLike, None]) -> Tuple[Path, str]:
    """(directory, data set prefix) of a table path: a directory (holding ``cifar10_*.csv``, or
    one ``<prefix>_200epochs.csv``) or one of the table files itself."""
    p = Path(path) if path is not None else default_nb201_dir()
    if p.is_file() or p.name.endswith(("_200epochs.csv", "_12epochs.csv")):
        stem = p.name
        for suffix in ("_200epochs.csv", "_12epochs.csv"):
            if stem.endswith(suffix):
                return p.parent, stem[: -len(suffix)]
        raise UserInputError(f"{p}: not a NAS-Bench-201 table file (expected <dataset>_200epochs.csv "
                             "or <dataset>_12epochs.csv)")
    if (p / FILE_200).exists() or not p.is_dir():
        return p, "cifar10"
    found = sorted(f.name[: -len("_200epochs.csv")] for f in p.glob("*_200epochs.csv"))
    return p, (found[0] if len(found) == 1 else "cifar10")


def load_nb201(path: Union[str, os.PathLike, None] = None) -> NB201Table:
    """Load (once per resolved path) the NB201 tables from ``path`` (see :func:`table_files`).

    Raises :class:`UserInputError` naming the file and the problem when a file is missing or
    malformed (missing column, wrong row count, non-numeric value, rows out of order).
    """
    directory, prefix = table_files(path)
    key = f"{directory.resolve()}|{prefix}"
    if key not in _CACHE:
        _CACHE[key] = _load(directory, prefix)
    return _CACHE[key]


def _read(file: Path, columns: Tuple[str, ...]) -> Dict[str, list]:
    if not file.is_file():
        raise UserInputError(f"NAS-Bench-201 table {file} not found (expected the CSV files of "
                             f"shared/benchmarks/nb201; set the objective's path)")
    with open(file, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise UserInputError(f"{file}: empty file, expected a CSV header")
        missing = [c for c in columns if c not in header]
        if missing:
            raise UserInputError(f"{file}: missing column(s) {', '.join(missing)}")
        idx = [header.index(c) for c in columns]
        width = max(idx)
        out: Dict[str, list] = {c: [] for c in columns}
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) <= width:
                raise UserInputError(f"{file}, line {line}: {len(row)} fields, expected "
                                     f"{len(header)} (truncated file?)")
            for c, i in zip(columns, idx):
                out[c].append(row[i])
    n = len(out["arch_str"])
    if n != NB201_ROWS:
        raise UserInputError(f"{file}: {n} rows, expected {NB201_ROWS} (one per NAS-Bench-201 "
                             f"architecture; truncated file?)")
    return out


def _numbers(file: Path, name: str, values: list) -> np.ndarray:
    try:
        arr = np.array([float(v) for v in values])
    except ValueError:
        bad = next(i for i, v in enumerate(values) if not _is_float(v))
        raise UserInputError(f"{file}, line {bad + 2}: column {name} has non-numeric value "
                             f"{values[bad]!r}") from None
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise UserInputError(f"{file}, line {bad + 2}: column {name} is not finite "
                             f"({values[bad]!r})")
    return arr


def _is_float(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def _load(directory: Path, prefix: str = "cifar10") -> NB201Table:
    f200, f12 = directory / f"{prefix}_200epochs.csv", directory / f"{prefix}_12epochs.csv"
    t200, t12 = _read(f200, COLUMNS_200), _read(f12, COLUMNS_12)
    for i, (a, b) in enumerate(zip(t200["arch_str"], t12["arch_str"])):
        if a != b:
            raise UserInputError(f"{f12}, line {i + 2}: arch_str {b!r} differs from {f200}'s "
                                 f"{a!r}: the two tables must list architectures in the same order")
    arch = tuple(t200["arch_str"])
    row_of = {a: i for i, a in enumerate(arch)}
    if len(row_of) != len(arch):
        raise UserInputError(f"{f200}: duplicate arch_str rows")
    return NB201Table(
        str(directory), DATASET_NAMES.get(prefix, prefix), arch, row_of,
        _numbers(f200, "valid-accuracy", t200["valid-accuracy"]),
        _numbers(f200, "test-accuracy", t200["test-accuracy"]),
        _numbers(f200, "train-all-time", t200["train-all-time"]),
        _numbers(f12, "valid-accuracy", t12["valid-accuracy"]),
        _numbers(f12, "test-accuracy", t12["test-accuracy"]))


class NB201Objective:
    """Scores nb201 suggestions from the table and says how long training would have taken.

    Stateful only in remembering each evaluated trial's epochs, so that a promoted trial
    (``resume_from``) is charged the extra epochs only; a ``resume_from`` it has not seen is
    charged in full.
    """

    def __init__(self, path: Union[str, os.PathLike, None] = None):
        self.table = load_nb201(path)
        self._epochs: Dict[int, float] = {}

    def evaluate(self, suggestion: Suggestion) -> Tuple[Outcome, float]:
        """The trial's outcome and its simulated training seconds."""
        epochs = FULL_EPOCHS if suggestion.budget is None else float(suggestion.budget)
        try:
            row = self.table.row(suggestion.config)
        except (KeyError, ValueError) as e:
            return Outcome.failure(suggestion.trial_id, f"not an nb201 configuration: {e}"), 0.0
        done = self._epochs.get(suggestion.resume_from, 0.0) \
            if suggestion.resume_from is not None else 0.0
        self._epochs[suggestion.trial_id] = epochs
        seconds = self.table.seconds(row, max(0.0, epochs - done))
        valid, test = self.table.accuracy(row, epochs)
        metrics = {"valid_accuracy": valid, "test_accuracy": test, "train_seconds": seconds,
                   "epochs": epochs}
        return Outcome(suggestion.trial_id, "done", metrics), seconds

    def best_possible(self, metric: str = "valid_accuracy") -> Optional[float]:
        col = {"valid_accuracy": self.table.valid200,
               "test_accuracy": self.table.test200}.get(metric)
        return None if col is None else float(np.max(col))

