"""Tests' read access to an experiment on disk: every trial as a record, kept model states."""
from nasrun.store import open_store


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
