"""Tests' read access to an experiment on disk: every trial as a record, kept model states."""
import json
import warnings

from nasrun.store import DONE, CheckpointWarning, open_store


class View:
    def __init__(self, store, loaded):
        self.loaded = loaded
        self.trials = loaded.state.all_records()
        self.refs = loaded.state.refs
        self.runtime = loaded.runtime
        self._store = store

    @property
    def models(self):
        """trial id -> its newest kept model state (read and verified)."""
        return {tid: self._store.states.read(refs[-1]) for tid, refs in self.refs.items()}


def load_view(path):
    store = open_store(str(path))
    loaded = store.load()
    return None if loaded is None else View(store, loaded)


def load_strict(path):
    """``load_view``, a checkpoint warning being an error (a kill is no corruption)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointWarning)
        return load_view(path)


def results(snap):
    """Finished trials: id -> (configuration as JSON, metrics); the trial ids are unique."""
    ids = [r.trial_id for r in snap.trials]
    assert len(ids) == len(set(ids)), f"duplicate trial ids: {ids}"
    return {r.trial_id: (json.dumps(r.suggestion.config, sort_keys=True), r.outcome.metrics)
            for r in snap.trials if r.status == DONE}
