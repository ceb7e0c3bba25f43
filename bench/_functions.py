"""Cheap objectives for bench/strategies.py: Branin, Hartmann-6 and a chain-space proxy.

Each is ``(space, function, optimum)``: ``function(config) -> float`` is minimised for the test
functions (``optimum`` its known minimum) and maximised for the proxy (``optimum`` None).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import numpy as np

from nasrun.space import Float, SearchSpace, builtin_params

Objective = Tuple[SearchSpace, Callable[[Mapping[str, Any]], float], Optional[float]]


def branin() -> Objective:
    """Branin-Hoo on [-5, 10] x [0, 15]; minimum 0.397887 (three minimisers)."""
    space = SearchSpace([Float("x1", {}, -5.0, 10.0), Float("x2", {}, 0.0, 15.0)])

    def f(c: Mapping[str, Any]) -> float:
        x1, x2 = float(c["x1"]), float(c["x2"])
        b, cc, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
        return (x2 - b * x1 ** 2 + cc * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10
    return space, f, 0.397887


HARTMANN_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                       [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
HARTMANN_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                              [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
HARTMANN_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6() -> Objective:
    """Hartmann-6 on [0, 1]^6; minimum -3.32237."""
    space = SearchSpace([Float(f"x{i}", {}, 0.0, 1.0) for i in range(6)])

    def f(c: Mapping[str, Any]) -> float:
        x = np.array([float(c[f"x{i}"]) for i in range(6)])
        return float(-HARTMANN_ALPHA @ np.exp(-np.sum(HARTMANN_A * (x - HARTMANN_P) ** 2, axis=1)))
    return space, f, -3.32237


CHAIN_OPTIONS = {"kind": "cnn", "max_layers": 6, "widths": [32, 64, 128]}  # configs/cifar10-chain.yaml


def chain_proxy() -> Objective:
    """configs/cifar10-chain.yaml's space with a synthetic, seeded "accuracy" (maximised): per
    layer an operation x width value, an interaction between consecutive operations, a bonus
    for a useful skip connection and an optimum depth of 4 layers. Deterministic and cheap, a
    landscape of a different shape from NAS-Bench-201's (conditionals, integers, a depth
    trade-off), not a training run."""
    space = SearchSpace(builtin_params("chain", dict(CHAIN_OPTIONS)))
    rng = np.random.default_rng(2021)
    ops = list(space["layer0_op"].choices)  # type: ignore[attr-defined]
    widths = list(space["layer0_width"].choices)  # type: ignore[attr-defined]
    unary = rng.normal(0.0, 1.0, (6, len(ops), len(widths)))
    pair = rng.normal(0.0, 0.7, (len(ops), len(ops)))
    skip_gain: Dict[str, float] = {"none": 0.0, "stem": 0.3}

    def f(c: Mapping[str, Any]) -> float:
        n = int(c["num_layers"])
        total = -0.8 * (n - 4) ** 2
        for i in range(n):
            o, w = ops.index(c[f"layer{i}_op"]), widths.index(c[f"layer{i}_width"])
            total += unary[i, o, w]
            if i:
                total += pair[ops.index(c[f"layer{i - 1}_op"]), o]
                skip = c[f"layer{i}_skip"]
                total += skip_gain.get(skip, 0.5 if i >= 3 else -0.2)
        return 90.0 + total
    return space, f, None
