"""Random search: the floor every other strategy must beat."""
from __future__ import annotations

from .base import Strategy


class RandomSearch(Strategy):
    options = {}

    def ask(self):
        return self._new(self.space.sample(self.rng))

    def tell(self, outcome):
        self._take(outcome)
