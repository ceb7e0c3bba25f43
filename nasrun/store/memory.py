"""A store in memory, for tests, simulations and the Python API: same events, no files."""
from __future__ import annotations

import copy
from typing import Any, Dict, Optional, Tuple

from .base import Loaded, Store
from .state import ExperimentState
from .states import MemoryStates


class MemoryStore(Store):
    """Keeps the state as the events leave it; ``load()`` returns a deep copy of the last
    committed runtime and strategy snapshot with every event logged since (like a kill -9
    followed by a resume)."""

    def __init__(self) -> None:
        self.state = ExperimentState()
        self.states = MemoryStates()
        self.spec_text, self.version = "", ""
        self.runtime: Dict[str, Any] = {}
        self.strategy: Optional[Tuple[int, Dict[str, Any]]] = None
        self.commits = 0
        self.events = 0
        self._pending = 0
        self.timings: Dict[str, float] = {"commit": 0.0, "merge": 0.0, "log": 0.0}

    def load(self) -> Optional[Loaded]:
        if not self.commits:
            return None
        seq, sd = self.strategy if self.strategy is not None else (-1, None)
        state = copy.deepcopy(self.state)
        return Loaded(self.spec_text, self.version, state, copy.deepcopy(self.runtime), seq,
                      copy.deepcopy(sd), self.commits)

    def begin(self, spec_text: str, version: str, loaded: Optional[Loaded], metric: str = "",
              mode: str = "") -> None:
        self.spec_text, self.version = spec_text, version
        if loaded is not None:
            self.state = loaded.state

    def log(self, event: Any) -> None:
        self.state.apply(event)
        self.events += 1
        self._pending += 1

    @property
    def pending_events(self) -> int:
        return self._pending

    def commit(self, runtime: Dict[str, Any],
               strategy: Optional[Tuple[int, Dict[str, Any]]] = None) -> None:
        self.runtime = copy.deepcopy(runtime)
        if strategy is not None:
            self.strategy = (strategy[0], copy.deepcopy(strategy[1]))
        self.commits += 1
        self._pending = 0
        # finished trials stay in memory (readers of a memory store want them all)
        if self.state.table is not None and self.state.fresh:
            from .columns import Block, encode
            self.state.table.add(Block(encode(self.state.fresh, "")))
            self.state.fresh = []
