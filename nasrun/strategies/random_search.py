"""Random search: the floor every other strategy must beat."""
from __future__ import annotations

from typing import Union

from ..trial import AskStatus, Outcome, Suggestion
from .base import Strategy


class RandomSearch(Strategy):
    options = {}
    multi_objective = True  # it selects nothing, so any number of objectives is fine

    def ask(self) -> Union[Suggestion, AskStatus]:
        return self._new(self.space.sample(self.rng))

    def tell(self, outcome: Outcome) -> None:
        self._take(outcome)
