"""Zoph & Le (ICLR 2017): an LSTM controller trained with REINFORCE, with a parameter server.

The controller emits a configuration token by token in space order: one softmax per active
parameter over its ``Param.grid(bins)`` values (categorical choices; numeric parameters
discretised into ``bins`` values); a parameter whose condition is unmet emits no token. The input
to each step is the embedding of the previous token (a learned start vector first). Weights start
uniform in [-0.08, 0.08].

Training is REINFORCE with reward = the score (the metric, sign-adjusted for ``mode``), minus an
exponential-moving-average baseline (``baseline_decay``); the advantage is divided by an EMA of
its own spread (``normalize_advantage``), so that ``lr`` and ``entropy_weight`` do not depend on
the metric's units. An entropy bonus (``entropy_weight``); Adam.

Exploration: ENAS's logit clipping, ``tanh_constant * tanh(raw / temperature)``. With Adam and
normalised advantages each update moves the policy by about ``lr`` however small the reward
differences have become, so without a bound the controller collapses onto one architecture
whatever the objective (on NAS-Bench-201 it proposed 1 distinct cell per 25 trials after ~200
trials), and an entropy bonus of any sensible weight does not stop that pressure. The clipping
bounds the odds between two choices of a parameter by ``exp(2 * tanh_constant)`` (about 55 with
the default 2), so every choice keeps a share of the samples however long the run, and the
gradient vanishes as the logits saturate. ``tanh_constant`` 2 lies between ENAS's 1.5 and 2.5;
``temperature`` 2.5 (ENAS: 5) keeps the logits' initial gain ``tanh_constant / temperature``
near the unclipped controller's 1, so it learns as fast early on. Checked on 10 seeds other
than the reported ones on the NAS-Bench-201 table at 200 and at 12 epochs and on the chain space
with a synthetic objective (``bench/rl_controller.py --proxy``): temperature 5 was as good at 500
evaluations and slower at 150 on all three.

Distributed structure: a :class:`~.param_server.ParameterServer` holds the shared parameters.
``replicas`` controller replicas each pull the parameters, sample ``samples_per_replica``
configurations, and once all their results are told push the policy gradient computed against
the parameters they sampled with; a gradient more than ``max_staleness`` versions old is rejected.
When every replica is waiting for results, ``ask()`` returns ``WAIT``: choose
``replicas * samples_per_replica`` at least the number of worker groups to keep every group busy.
Failed trials give no reward and are left out of their replica's gradient.

Sampling draws from the strategy's numpy RNG; the LSTM (:mod:`.lstm_policy`) runs in float64
numpy, so a restored strategy continues exactly.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np

from ..space import SearchSpace
from ..trial import AskStatus, Outcome, Suggestion
from .base import WAIT, Strategy
from .lstm_policy import LSTMPolicy
from .param_server import ParameterServer

INIT_RANGE = 0.08


class RLController(Strategy):
    options = {"replicas": 4, "samples_per_replica": 4, "bins": 8, "hidden_size": 32,
               "lr": 0.01, "baseline_decay": 0.95, "entropy_weight": 0.001,
               "max_staleness": 8, "normalize_advantage": True, "temperature": 2.5,
               "tanh_constant": 2.0}

    def __init__(self, space: SearchSpace, seed: int = 0, metric: str = "valid_accuracy",
                 mode: str = "max", **options: Any):
        super().__init__(space, seed, metric, mode, **options)
        if int(self.opts["replicas"]) < 1 or int(self.opts["samples_per_replica"]) < 1:
            raise ValueError("replicas and samples_per_replica must be at least 1")
        self.params = list(space)
        self.grids = [p.grid(int(self.opts["bins"])) for p in self.params]
        self.policy = LSTMPolicy([len(g) for g in self.grids], int(self.opts["hidden_size"]),
                                 float(self.opts["temperature"]), float(self.opts["tanh_constant"]))
        init = self.policy.init(np.random.default_rng([seed, 1]), INIT_RANGE)
        self.server = ParameterServer(init, self.opts["lr"], self.opts["max_staleness"])
        self.replicas = [_idle() for _ in range(int(self.opts["replicas"]))]
        self.baseline: Optional[float] = None
        self.spread: Optional[float] = None  # EMA of squared advantage

    # -- the network -----------------------------------------------------------------------
    def _sample(self, P: Mapping[str, np.ndarray]) -> Tuple[Dict[str, Any], List[List[int]]]:
        """A configuration and its tokens ``[param index, grid index]``, drawn with self.rng."""
        x, h, c = self.policy.begin(dict(P))
        config: Dict[str, Any] = {}
        tokens: List[List[int]] = []
        for j, p in enumerate(self.params):
            if not self.space.is_active(p, config):
                continue
            probs, h, c = self.policy.step(dict(P), x, h, c, j)
            k = int(np.searchsorted(np.cumsum(probs), self.rng.random() * probs.sum(), side="right"))
            k = min(k, len(probs) - 1)
            config[p.name] = self.grids[j][k]
            tokens.append([j, k])
            x = P[f"emb{j}"][k]
        return config, tokens

    # -- ask / tell ------------------------------------------------------------------------
    def ask(self) -> Union[Suggestion, AskStatus]:
        m = int(self.opts["samples_per_replica"])
        sampling = [r for r, rep in enumerate(self.replicas)
                    if rep["params"] is not None and len(rep["trials"]) < m]
        idle = [r for r, rep in enumerate(self.replicas) if rep["params"] is None]
        if sampling:
            r = sampling[0]
        elif idle:
            r = idle[0]
            rep = self.replicas[r]
            rep["version"], rep["params"] = self.server.pull()
        else:
            return WAIT
        rep = self.replicas[r]
        config, tokens = self._sample(rep["params"])
        s = self._new(config, replica=r, version=rep["version"],
                      staleness=self.server.version - rep["version"],
                      rejected=self.server.rejected)
        rep["trials"].append([s.trial_id, tokens, None, False])
        return s

    def tell(self, outcome: Outcome) -> None:
        s = self._take(outcome)
        rep = self.replicas[int(s.info["replica"])]
        entry = next(e for e in rep["trials"] if e[0] == s.trial_id)
        score = self.score(outcome)
        entry[2], entry[3] = (None if score is None else float(score)), True
        if len(rep["trials"]) == int(self.opts["samples_per_replica"]) and \
                all(e[3] for e in rep["trials"]):
            self._finish(int(s.info["replica"]))

    def _advantage(self, reward: float) -> float:
        decay = float(self.opts["baseline_decay"])
        if self.baseline is None:
            self.baseline = reward
        adv = reward - self.baseline
        self.baseline = decay * self.baseline + (1 - decay) * reward
        if not self.opts["normalize_advantage"]:
            return adv
        if self.spread is None:
            if adv == 0.0:
                return 0.0
            self.spread = adv * adv
        self.spread = decay * self.spread + (1 - decay) * adv * adv
        return adv / float(np.sqrt(self.spread))

    def _finish(self, r: int) -> None:
        rep = self.replicas[r]
        scored = sorted((e for e in rep["trials"] if e[2] is not None), key=lambda e: e[0])
        if scored:
            advantages = [self._advantage(e[2]) for e in scored]
            grads = self.policy.gradient(rep["params"], [e[1] for e in scored], advantages,
                                         float(self.opts["entropy_weight"]))
            self.server.push(grads, rep["version"])
        self.replicas[r] = _idle()

    # -- state -----------------------------------------------------------------------------
    def _state(self) -> Dict[str, Any]:
        return {"server": self.server.state_dict(), "baseline": self.baseline,
                "spread": self.spread,
                "replicas": [{"version": rep["version"],
                              "params": None if rep["params"] is None
                              else {k: v.copy() for k, v in rep["params"].items()},
                              "trials": [[e[0], [list(t) for t in e[1]], e[2], e[3]]
                                         for e in rep["trials"]]}
                             for rep in self.replicas]}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        self.server.load_state_dict(state["server"])
        self.baseline = None if state["baseline"] is None else float(state["baseline"])
        self.spread = None if state["spread"] is None else float(state["spread"])
        self.replicas = []
        for rep in state["replicas"]:
            params = None if rep["params"] is None else \
                {k: np.array(v, dtype=float) for k, v in rep["params"].items()}
            self.replicas.append({
                "version": rep["version"], "params": params,
                "trials": [[int(e[0]), [[int(a), int(b)] for a, b in e[1]],
                            None if e[2] is None else float(e[2]), bool(e[3])]
                           for e in rep["trials"]]})


def _idle() -> Dict[str, Any]:
    return {"version": None, "params": None, "trials": []}
