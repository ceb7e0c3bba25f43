"""An experiment opened for reading: its newest good snapshot plus what the spec says."""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ..errors import CheckpointError, UserInputError
from ..store.base import DONE, Snapshot, TrialRecord


@dataclass
class Experiment:
    """A read-only view of one experiment (``file`` is the generation that was read)."""

    file: str
    generation: int
    saved_at: float
    snapshot: Snapshot
    spec: Dict[str, Any]
    metric: str
    mode: str
    warnings: List[str] = field(default_factory=list)

    @property
    def name(self) -> Optional[str]:
        exp = self.spec.get("experiment")
        return exp.get("name") if isinstance(exp, dict) else None

    @property
    def directory(self) -> str:
        return os.path.dirname(self.file)

    @property
    def budget(self) -> Dict[str, Any]:
        b = self.spec.get("budget")
        return b if isinstance(b, dict) else {}

    @property
    def trials(self) -> List[TrialRecord]:
        return self.snapshot.trials

    def value(self, t: TrialRecord) -> Optional[float]:
        """The trial's objective metric (None unless done with a finite value)."""
        return t.outcome.value(self.metric) if t.outcome is not None else None

    def ranked(self) -> List[TrialRecord]:
        """Done trials with a metric value, best first (ties: lower trial id first)."""
        scored = [(t, self.value(t)) for t in self.trials if t.status == DONE]
        scored = [(t, v) for t, v in scored if v is not None]
        sign = -1.0 if self.mode == "max" else 1.0
        scored.sort(key=lambda tv: (sign * tv[1], tv[0].trial_id))
        return [t for t, _ in scored]


def open_experiment(path: str) -> Experiment:
    """Open the experiment at ``path`` (a run directory or a checkpoint file) read-only.

    Raises :class:`~nasrun.errors.CheckpointError` (exit 2) when the path does not exist, holds
    no nasrun checkpoint, or every generation is unusable. Fallbacks to an older generation are
    listed in ``warnings``.
    """
    import h5py
    import yaml

    from ..store import CheckpointWarning, open_store
    from ..store.hdf5 import _objective

    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such file or directory")
    store = open_store(path)
    with warnings.catch_warnings():  # the Experiment carries them (store.warnings)
        warnings.simplefilter("ignore", CheckpointWarning)
        snap = store.load(models=False)
    if snap is None:
        raise CheckpointError(f"{path}: no nasrun checkpoint here (expected {store.path})")
    with h5py.File(store.loaded_from, "r", locking=False) as f:
        saved_at = float(f.attrs["saved_at"])
    try:
        spec = yaml.safe_load(snap.spec_text) or {}
    except yaml.YAMLError:
        spec = {}
    metric, mode = _objective(snap.spec_text)
    return Experiment(store.loaded_from, int(store.generation or 0), saved_at, snap,
                      spec if isinstance(spec, dict) else {}, metric, mode, list(store.warnings))


def find_trial(exp: Experiment, trial_id: int) -> TrialRecord:
    """The trial with this id, or a :class:`~nasrun.errors.UserInputError` saying which exist."""
    for t in exp.trials:
        if t.trial_id == trial_id:
            return t
    ids = sorted(t.trial_id for t in exp.trials)
    known = f"its trials are {ids[0]}..{ids[-1]}" if ids else "it has no trials yet"
    raise UserInputError(f"{exp.file}: no trial {trial_id} in this experiment ({known})")
