"""The parameter server of Zoph & Le's distributed controller training, on rank 0.

It holds the controller's shared parameters (numpy arrays), Adam's moments and a version
counter. A replica :meth:`pull`\\ s the parameters (and their version), later :meth:`push`\\ es a
gradient computed against them; the server applies it with Adam, unless it is too stale:
staleness = current version - pulled version, and a gradient with staleness above
``max_staleness`` is rejected (counted, not applied). Plain numpy; no torch.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Tuple

import numpy as np


class ParameterServer:
    def __init__(self, params: Mapping[str, np.ndarray], lr: float, max_staleness: int,
                 betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params = {k: np.array(v, dtype=float) for k, v in params.items()}
        self.m = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.v = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.lr, self.max_staleness = float(lr), int(max_staleness)
        self.betas, self.eps = betas, eps
        self.version = 0  # number of gradients applied
        self.rejected = 0
        self.staleness_sum = 0
        self.staleness_max = 0

    def pull(self) -> Tuple[int, Dict[str, np.ndarray]]:
        """The current version and a copy of the parameters."""
        return self.version, {k: v.copy() for k, v in self.params.items()}

    def push(self, grads: Mapping[str, np.ndarray], version: int) -> Tuple[bool, int]:
        """Apply a gradient computed at ``version``; returns (applied, staleness)."""
        staleness = self.version - int(version)
        if staleness > self.max_staleness:
            self.rejected += 1
            return False, staleness
        b1, b2 = self.betas
        t = self.version + 1
        for k, g in grads.items():
            self.m[k] = b1 * self.m[k] + (1 - b1) * g
            self.v[k] = b2 * self.v[k] + (1 - b2) * g * g
            m_hat = self.m[k] / (1 - b1 ** t)
            v_hat = self.v[k] / (1 - b2 ** t)
            self.params[k] = self.params[k] - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
        self.version = t
        self.staleness_sum += staleness
        self.staleness_max = max(self.staleness_max, staleness)
        return True, staleness

    def stats(self) -> Dict[str, Any]:
        return {"version": self.version, "rejected": self.rejected,
                "mean_staleness": self.staleness_sum / self.version if self.version else 0.0,
                "max_staleness": self.staleness_max}

    def state_dict(self) -> Dict[str, Any]:
        return {"params": {k: v.copy() for k, v in self.params.items()},
                "m": {k: v.copy() for k, v in self.m.items()},
                "v": {k: v.copy() for k, v in self.v.items()},
                "version": self.version, "rejected": self.rejected,
                "staleness_sum": self.staleness_sum, "staleness_max": self.staleness_max}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for name in ("params", "m", "v"):
            setattr(self, name, {k: np.array(v, dtype=float) for k, v in state[name].items()})
        self.version = int(state["version"])
        self.rejected = int(state["rejected"])
        self.staleness_sum = int(state["staleness_sum"])
        self.staleness_max = int(state["staleness_max"])
