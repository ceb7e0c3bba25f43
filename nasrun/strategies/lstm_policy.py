"""The RL controller's network: an LSTM that emits one token per step, in plain numpy (float64).

Step ``t`` feeds the previous token's embedding (a learned start vector first) through one LSTM
cell (gates in the order input, forget, cell, output) and reads parameter ``j``'s logits from
its head: ``tanh_constant * tanh(raw / temperature)`` (ENAS's logit clipping; with
``tanh_constant`` 0 just ``raw / temperature``), ``raw = head_w @ h + head_b``. The clipping
bounds how far one choice can dominate another: with ``tanh_constant`` C the largest
probability ratio between two choices is ``exp(2 C)``, whatever the weights.

:meth:`LSTMPolicy.gradient` is the exact gradient of the REINFORCE loss with an entropy bonus,
backpropagation through time written out (it is compared with torch's autograd in the tests);
numpy instead of torch autograd because the graphs are tiny (a few steps of a 32-unit cell) and
torch's per-operation overhead made the controller cost ~15 ms per trial on rank 0.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np

Params = Dict[str, np.ndarray]
Tokens = Sequence[Sequence[int]]  # [parameter index, choice index] per step


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow for large |x|


class LSTMPolicy:
    def __init__(self, sizes: Sequence[int], hidden: int, temperature: float = 1.0,
                 tanh_constant: float = 0.0):
        self.sizes = [int(n) for n in sizes]
        self.hidden = int(hidden)
        self.temperature = float(temperature)
        self.tanh_constant = float(tanh_constant)

    def init(self, rng: np.random.Generator, init_range: float = 0.08) -> Params:
        """Weights uniform in [-init_range, init_range] (Zoph & Le)."""
        H = self.hidden
        shapes: Dict[str, Tuple[int, ...]] = {"start": (H,), "w_ih": (4 * H, H),
                                              "w_hh": (4 * H, H), "b": (4 * H,)}
        for j, n in enumerate(self.sizes):
            shapes[f"emb{j}"] = (n, H)
            shapes[f"head{j}_w"] = (n, H)
            shapes[f"head{j}_b"] = (n,)
        return {k: rng.uniform(-init_range, init_range, size=s) for k, s in shapes.items()}

    def begin(self, P: Params) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The state before the first step: (input, h, c)."""
        zero = np.zeros(self.hidden)
        return P["start"], zero, zero

    def step(self, P: Params, x: np.ndarray, h: np.ndarray, c: np.ndarray,
             j: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(probabilities of parameter ``j``'s choices, h, c) after feeding ``x``."""
        h, c, _ = self._cell(P, x, h, c)
        logits, _ = self._logits(P, j, h)
        return _softmax(logits), h, c

    def _cell(self, P: Params, x: np.ndarray, h: np.ndarray,
              c: np.ndarray) -> Tuple[np.ndarray, np.ndarray, Tuple[np.ndarray, ...]]:
        H = self.hidden
        z = P["w_ih"] @ x + P["w_hh"] @ h + P["b"]
        i, f, g, o = (_sigmoid(z[:H]), _sigmoid(z[H:2 * H]), np.tanh(z[2 * H:3 * H]),
                      _sigmoid(z[3 * H:]))
        c2 = f * c + i * g
        tc = np.tanh(c2)
        return o * tc, c2, (x, h, c, i, f, g, o, tc)

    def _logits(self, P: Params, j: int, h: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(logits, d logits / d raw-before-temperature)."""
        raw = (P[f"head{j}_w"] @ h + P[f"head{j}_b"]) / self.temperature
        if self.tanh_constant > 0:
            t = np.tanh(raw)
            return self.tanh_constant * t, self.tanh_constant * (1.0 - t * t) / self.temperature
        return raw, np.full_like(raw, 1.0 / self.temperature)

    def gradient(self, P: Params, batch: Sequence[Tokens], advantages: Sequence[float],
                 entropy_weight: float) -> Params:
        """Gradient of ``mean over the batch of -(A * log p(tokens) + entropy_weight * sum of
        the steps' entropies)``."""
        G = {k: np.zeros_like(v) for k, v in P.items()}
        H = self.hidden
        n = max(1, len(batch))
        for tokens, adv in zip(batch, advantages):
            x, h, c = self.begin(P)
            caches: List[Tuple[np.ndarray, ...]] = []
            prev: List[Tuple[int, int]] = []  # where each step's input came from (-1: start)
            dhs: List[np.ndarray] = []
            for j, k in tokens:
                h, c, cache = self._cell(P, x, h, c)
                logits, dlogit = self._logits(P, j, h)
                p = _softmax(logits)
                logp = np.log(np.maximum(p, 1e-300))
                entropy = -float(p @ logp)
                # d loss / d logits: -A (onehot - p) - w * dH/dlogits, dH/dlogits = -p (logp + H)
                d = adv * p
                d[k] -= adv
                d = d + entropy_weight * p * (logp + entropy)
                dz = d * dlogit / n
                G[f"head{j}_w"] += np.outer(dz, h)
                G[f"head{j}_b"] += dz
                dhs.append(P[f"head{j}_w"].T @ dz)
                caches.append(cache)
                x = P[f"emb{j}"][k]
                prev.append((j, k))
            dh_next, dc_next = np.zeros(H), np.zeros(H)
            for t in range(len(caches) - 1, -1, -1):
                xin, h_prev, c_prev, i, f, g, o, tc = caches[t]
                dh = dhs[t] + dh_next
                dc = dc_next + dh * o * (1.0 - tc * tc)
                dgates = np.concatenate([dc * g * i * (1.0 - i), dc * c_prev * f * (1.0 - f),
                                         dc * i * (1.0 - g * g), dh * tc * o * (1.0 - o)])
                G["w_ih"] += np.outer(dgates, xin)
                G["w_hh"] += np.outer(dgates, h_prev)
                G["b"] += dgates
                dx = P["w_ih"].T @ dgates
                if t == 0:
                    G["start"] += dx
                else:
                    pj, pk = prev[t - 1]
                    G[f"emb{pj}"][pk] += dx
                dh_next = P["w_hh"].T @ dgates
                dc_next = dc * f
        return G


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max())
    out: np.ndarray = e / e.sum()
    return out
