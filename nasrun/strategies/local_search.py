"""Local search, the NAS-benchmark variant (White, Nolen & Savani, "Local search is state of the
art for NAS benchmarks", 2021).

The search keeps a *centre* (the incumbent of the current climb) and walks its neighbours, the
configurations one edit away (:func:`acquisition.neighbours`: one operation of a cell, one
choice, one step of a number), in random order. The first neighbour told with a better score
than the centre becomes the new centre (first improvement) and the walk continues from there;
when every neighbour of the centre has been asked and told without improvement the centre is a
local optimum and the search restarts at random. A start (the first and each restart) asks
``n_initial`` random configurations and walks from the best of them (naszilla's ``num_init``,
the code of White et al.): a single random start on NAS-Bench-201 is often a cell of
``none`` edges, on a plateau where first improvement wastes evaluations.

Asynchronous: asks never wait. With the neighbour list of the centre exhausted while some of
them are still running, the next asks are random configurations (candidate restart points; one
that beats the centre moves it there like any better result). No configuration is asked twice.
Failed trials are no information: a failed centre candidate is simply not a centre.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Set, Union

from ..space import SearchSpace
from ..trial import AskStatus, Outcome, Suggestion
from .acquisition import neighbours, random_unseen
from .base import Strategy
from .kde_model import config_key

Config = Dict[str, Any]


class LocalSearch(Strategy):
    options = {"n_initial": 10, "numeric_steps": 4}

    def __init__(self, space: SearchSpace, seed: int = 0, metric: str = "valid_accuracy",
                 mode: str = "max", **options: Any):
        super().__init__(space, seed, metric, mode, **options)
        if int(self.opts["numeric_steps"]) < 1 or int(self.opts["n_initial"]) < 1:
            raise ValueError("numeric_steps and n_initial must be at least 1")
        self.centre: Optional[Dict[str, Any]] = None  # {"trial_id", "config", "score"}
        self.queue: List[Config] = []  # the centre's neighbours not asked yet, in asking order
        self.seen: Set[str] = set()
        self.restarts = 0
        self.start_left = int(self.opts["n_initial"])  # random asks before the walk (re)starts

    def ask(self) -> Union[Suggestion, AskStatus]:
        while self.queue and self.start_left <= 0:
            config = self.queue.pop(0)
            key = config_key(config)
            if key not in self.seen:
                self.seen.add(key)
                assert self.centre is not None
                return self._new(config, origin="neighbour", centre=self.centre["trial_id"])
        config = random_unseen(self.space, self.rng, self.seen)
        self.seen.add(config_key(config))
        self.start_left -= 1
        return self._new(config, origin="random")

    def tell(self, outcome: Outcome) -> None:
        s = self._take(outcome)
        score = self.score(outcome)
        if score is not None and (self.centre is None or score > self.centre["score"]):
            self._move(s, score)
        elif self.centre is not None and not self.queue and not any(
                p.info.get("centre") == self.centre["trial_id"] for p in self.pending.values()):
            self.centre = None  # a local optimum: restart from the best of n_initial random ones
            self.restarts += 1
            self.start_left = int(self.opts["n_initial"])

    def _move(self, s: Suggestion, score: float) -> None:
        self.centre = {"trial_id": s.trial_id, "config": dict(s.config), "score": float(score)}
        found = neighbours(self.space, dict(s.config), self.rng, int(self.opts["numeric_steps"]))
        order = self.rng.permutation(len(found))
        self.queue = [found[int(i)] for i in order if config_key(found[int(i)]) not in self.seen]

    def _state(self) -> Dict[str, Any]:
        return {"centre": None if self.centre is None else dict(self.centre),
                "queue": [dict(c) for c in self.queue], "seen": sorted(self.seen),
                "restarts": self.restarts, "start_left": self.start_left}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        centre = state["centre"]
        self.centre = None if centre is None else dict(centre)
        self.queue = [dict(c) for c in state["queue"]]
        self.seen = set(state["seen"])
        self.restarts = int(state["restarts"])
        self.start_left = int(state["start_left"])
