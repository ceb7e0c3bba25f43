"""An experiment opened for reading: its newest good state plus what the spec says."""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ..errors import CheckpointError, UserInputError
from ..store.base import Loaded, TrialRecord
from ..view import ExperimentView


@dataclass
class Experiment:
    """A read-only view of one experiment (``file`` is the generation that was read)."""

    file: str
    generation: int
    saved_at: float
    loaded: Loaded
    spec: Dict[str, Any]
    view: ExperimentView
    warnings: List[str] = field(default_factory=list)
    _trials: Optional[List[TrialRecord]] = None

    @property
    def metric(self) -> str:
        return self.view.metric

    @property
    def mode(self) -> str:
        return self.view.mode

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
    def state(self):
        return self.loaded.state

    @property
    def runtime(self) -> Dict[str, Any]:
        return self.loaded.runtime if isinstance(self.loaded.runtime, dict) else {}

    @property
    def trials(self) -> List[TrialRecord]:
        """Every trial, in trial id order (built on first use)."""
        if self._trials is None:
            self._trials = self.state.all_records()
        return self._trials

    def value(self, t: TrialRecord) -> Optional[float]:
        """The trial's objective metric (None unless done with a finite value)."""
        return self.view.value(t)

    def ranked(self) -> List[TrialRecord]:
        """Trials that can be best, best first (see :mod:`nasrun.view`)."""
        return self.view.ranked(self.trials)

    def best(self, k: int = 1) -> List[TrialRecord]:
        """The ``k`` best trials, without building every record."""
        return self.view.top_of_state(self.state, k)


def open_experiment(path: str) -> Experiment:
    """Open the experiment at ``path`` (a run directory or a checkpoint file) read-only.

    Raises :class:`~nasrun.errors.CheckpointError` (exit 2) when the path does not exist, holds
    no nasrun checkpoint, or every generation is unusable. Fallbacks to an older generation are
    listed in ``warnings``.
    """
    import yaml

    from ..store import open_store

    if not os.path.lexists(path):
        raise CheckpointError(f"{path}: no such file or directory")
    st = os.stat(path) if os.path.exists(path) else None
    if st is not None and not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
        raise CheckpointError(f"{path}: not a directory or a regular file")
    store = open_store(path)
    store.on_warning = lambda msg: None  # the Experiment carries them (store.warnings)
    loaded = store.load()
    if loaded is None:
        raise CheckpointError(f"{path}: no nasrun checkpoint here (expected {store.path})")
    try:
        spec = yaml.safe_load(loaded.spec_text) or {}
    except (yaml.YAMLError, RecursionError):
        spec = {}
    spec = spec if isinstance(spec, dict) else {}
    objective = spec.get("objective")
    obj = objective if isinstance(objective, dict) else {}
    view = ExperimentView.from_text(loaded.spec_text, str(obj.get("metric", "valid_accuracy")),
                                    str(obj.get("mode", "max")))
    return Experiment(loaded.file, int(loaded.generation), float(loaded.saved_at), loaded, spec,
                      view, list(store.warnings))


def find_trial(exp: Experiment, trial_id: int) -> TrialRecord:
    """The trial with this id, or a :class:`~nasrun.errors.UserInputError` saying which exist."""
    for t in exp.trials:
        if t.trial_id == trial_id:
            return t
    ids = sorted(t.trial_id for t in exp.trials)
    known = f"its trials are {ids[0]}..{ids[-1]}" if ids else "it has no trials yet"
    raise UserInputError(f"{exp.file}: no trial {trial_id} in this experiment ({known})")
