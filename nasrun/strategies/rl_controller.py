"""Zoph & Le (ICLR 2017): an LSTM controller trained with REINFORCE, with a parameter server.

The controller emits a configuration token by token in space order: one softmax per active
parameter over its ``Param.grid(bins)`` values (categorical choices; numeric parameters
discretised into ``bins`` values); a parameter whose condition is unmet emits no token. The input
to each step is the embedding of the previous token (a learned start vector first). Weights start
uniform in [-0.08, 0.08].

Training is REINFORCE with reward = the score (the metric, sign-adjusted for ``mode``), minus an
exponential-moving-average baseline (``baseline_decay``); the advantage is divided by an EMA of
its own spread (``normalize_advantage``), so that ``lr`` and ``entropy_weight`` do not depend on
the metric's units. An entropy bonus (``entropy_weight``) keeps the policy exploring; Adam.

Distributed structure: a :class:`~.param_server.ParameterServer` holds the shared parameters.
``replicas`` controller replicas each pull the parameters, sample ``samples_per_replica``
configurations, and once all their results are told push the policy gradient computed against
the parameters they sampled with; a gradient more than ``max_staleness`` versions old is rejected.
When every replica is waiting for results, ``ask()`` returns ``WAIT``: choose
``replicas * samples_per_replica`` at least the number of worker groups to keep every group busy.
Failed trials give no reward and are left out of their replica's gradient.

Sampling draws from the strategy's numpy RNG; the LSTM runs in float64 torch on the CPU, so a
restored strategy continues exactly.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from .base import WAIT, Strategy
from .param_server import ParameterServer

INIT_RANGE = 0.08


class RLController(Strategy):
    options = {"replicas": 4, "samples_per_replica": 4, "bins": 8, "hidden_size": 32,
               "lr": 0.01, "baseline_decay": 0.95, "entropy_weight": 0.001,
               "max_staleness": 8, "normalize_advantage": True}

    def __init__(self, space, seed=0, metric="valid_accuracy", mode="max", **options):
        super().__init__(space, seed, metric, mode, **options)
        if int(self.opts["replicas"]) < 1 or int(self.opts["samples_per_replica"]) < 1:
            raise ValueError("replicas and samples_per_replica must be at least 1")
        self.params = list(space)
        self.grids = [p.grid(int(self.opts["bins"])) for p in self.params]
        init = self._init_params(np.random.default_rng([seed, 1]))
        self.server = ParameterServer(init, self.opts["lr"], self.opts["max_staleness"])
        self.replicas = [_idle() for _ in range(int(self.opts["replicas"]))]
        self.baseline: Optional[float] = None
        self.spread: Optional[float] = None  # EMA of squared advantage
        self._torch_cache: Dict[int, Dict[str, torch.Tensor]] = {}

    # -- the network -----------------------------------------------------------------------
    def _init_params(self, rng: np.random.Generator) -> Dict[str, np.ndarray]:
        H = int(self.opts["hidden_size"])
        shapes = {"start": (H,), "w_ih": (4 * H, H), "w_hh": (4 * H, H), "b": (4 * H,)}
        for j, g in enumerate(self.grids):
            shapes[f"emb{j}"] = (len(g), H)
            shapes[f"head{j}_w"] = (len(g), H)
            shapes[f"head{j}_b"] = (len(g),)
        return {k: rng.uniform(-INIT_RANGE, INIT_RANGE, size=s) for k, s in shapes.items()}

    @staticmethod
    def _cell(P: Mapping[str, torch.Tensor], x, h, c):
        gates = P["w_ih"] @ x + P["w_hh"] @ h + P["b"]
        i, f, g, o = gates.chunk(4)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def _sample(self, P: Mapping[str, torch.Tensor]) -> Tuple[Dict[str, Any], List[List[int]]]:
        """A configuration and its tokens ``[param index, grid index]``, drawn with self.rng."""
        H = int(self.opts["hidden_size"])
        h = c = torch.zeros(H, dtype=torch.float64)
        x = P["start"]
        config: Dict[str, Any] = {}
        tokens: List[List[int]] = []
        with torch.no_grad():
            for j, p in enumerate(self.params):
                if not self.space.is_active(p, config):
                    continue
                h, c = self._cell(P, x, h, c)
                logits = P[f"head{j}_w"] @ h + P[f"head{j}_b"]
                probs = torch.softmax(logits, 0).numpy()
                k = int(np.searchsorted(np.cumsum(probs), self.rng.random() * probs.sum(),
                                        side="right"))
                k = min(k, len(probs) - 1)
                config[p.name] = self.grids[j][k]
                tokens.append([j, k])
                x = P[f"emb{j}"][k]
        return config, tokens

    def _gradient(self, params: Mapping[str, np.ndarray], batch: Sequence[List[List[int]]],
                  advantages: Sequence[float]) -> Dict[str, np.ndarray]:
        """Gradient of -mean(A * log p(tokens)) - entropy_weight * mean(entropy)."""
        P = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
        H = int(self.opts["hidden_size"])
        loss = torch.zeros((), dtype=torch.float64)
        for tokens, adv in zip(batch, advantages):
            h = c = torch.zeros(H, dtype=torch.float64)
            x = P["start"]
            logp = torch.zeros((), dtype=torch.float64)
            entropy = torch.zeros((), dtype=torch.float64)
            for j, k in tokens:
                h, c = self._cell(P, x, h, c)
                log_probs = torch.log_softmax(P[f"head{j}_w"] @ h + P[f"head{j}_b"], 0)
                logp = logp + log_probs[k]
                entropy = entropy - (log_probs.exp() * log_probs).sum()
                x = P[f"emb{j}"][k]
            loss = loss - adv * logp - float(self.opts["entropy_weight"]) * entropy
        (loss / len(batch)).backward()
        return {k: t.grad.numpy().copy() if t.grad is not None else np.zeros_like(params[k])
                for k, t in P.items()}

    def _torch_params(self, r: int) -> Dict[str, torch.Tensor]:
        if r not in self._torch_cache:
            self._torch_cache[r] = {k: torch.from_numpy(v)
                                    for k, v in self.replicas[r]["params"].items()}
        return self._torch_cache[r]

    # -- ask / tell ------------------------------------------------------------------------
    def ask(self):
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
            self._torch_cache.pop(r, None)
        else:
            return WAIT
        rep = self.replicas[r]
        config, tokens = self._sample(self._torch_params(r))
        s = self._new(config, replica=r, version=rep["version"],
                      staleness=self.server.version - rep["version"],
                      rejected=self.server.rejected)
        rep["trials"].append([s.trial_id, tokens, None, False])
        return s

    def tell(self, outcome):
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
            grads = self._gradient(rep["params"], [e[1] for e in scored], advantages)
            self.server.push(grads, rep["version"])
        self.replicas[r] = _idle()
        self._torch_cache.pop(r, None)

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
        self._torch_cache = {}


def _idle() -> Dict[str, Any]:
    return {"version": None, "params": None, "trials": []}
