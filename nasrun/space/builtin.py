"""Built-in architecture spaces, expanded into plain parameters.

* ``chain``: a Zoph & Le style chain of layers. ``num_layers`` picks the depth; layer ``i`` has an
  operation, a width and (from the second layer on) an optional skip connection, added to the
  layer's output, from the stem or from a layer before the previous one (Zoph & Le's anchor
  points); a layer's parameters are active only when the chain is deep enough. ``kind: cnn`` uses
  convolution/pooling operations, ``kind: mlp`` fully connected layers with a choice of
  activation.
* ``nb201``: the NAS-Bench-201 cell, a DAG of 4 nodes whose 6 edges each take one of 5
  operations; :func:`nb201_arch_str` and :func:`nb201_config` convert to and from the benchmark's
  ``arch_str`` genotype strings.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from .params import Categorical, Integer, Param

CNN_OPS = ("conv3x3", "conv5x5", "conv1x1", "sepconv3x3", "maxpool3x3", "avgpool3x3")
MLP_OPS = ("relu", "tanh", "gelu", "sigmoid")
DEFAULT_WIDTHS = (16, 32, 64)

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# edge names "edge_<to>_<from>" in arch_str order: node1<-0 | node2<-0, node2<-1 | node3<-0,1,2
NB201_EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))

BUILTIN_OPTIONS: Dict[str, Dict[str, Any]] = {
    "chain": {"kind": "cnn", "max_layers": 4, "min_layers": 1, "ops": None, "widths": list(DEFAULT_WIDTHS),
              "skip": True},
    "nb201": {"ops": list(NB201_OPS)},
}


MAX_CHAIN_LAYERS = 64  # the chain space has about 3 parameters per layer
MAX_WIDTH = 2 ** 31 - 1
CHAIN_KINDS = {"cnn": CNN_OPS, "mlp": MLP_OPS}


def _text(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:80]}... ({len(text):,} characters)"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _names_problem(value: Any, known, what: str) -> Optional[str]:
    if not isinstance(value, (list, tuple)) or not value:
        return f"expected a non-empty list of {what}: {', '.join(known)}"
    for v in value:
        if not isinstance(v, str) or v not in known:
            return f"{_text(v)} is not one of the {what}: {', '.join(known)}"
    if len(set(value)) != len(value):
        return f"the {what} must be distinct"
    return None


def option_problem(name: str, options: Mapping[str, Any]) -> Optional[Tuple[str, str]]:
    """The first problem of a builtin space's options (defaults filled in) as (option, message),
    or None; what the options must be to expand into a space of bounded size."""
    opts = {**BUILTIN_OPTIONS[name], **options}
    if name == "nb201":
        problem = _names_problem(opts["ops"], NB201_OPS, "NAS-Bench-201 operations")
        return ("ops", problem) if problem else None
    kind = opts["kind"]
    if not isinstance(kind, str) or kind not in CHAIN_KINDS:
        return "kind", f"expected one of {', '.join(repr(k) for k in CHAIN_KINDS)}, got {_text(kind)}"
    for key in ("max_layers", "min_layers"):
        v = opts[key]
        if not _is_int(v) or not 1 <= v <= MAX_CHAIN_LAYERS:
            return key, f"expected an integer >= 1 and <= {MAX_CHAIN_LAYERS}, got {_text(v)}"
    if opts["min_layers"] > opts["max_layers"]:
        return "min_layers", (f"min_layers ({opts['min_layers']}) must not exceed max_layers "
                              f"({opts['max_layers']})")
    if opts["ops"] is not None:
        problem = _names_problem(opts["ops"], CHAIN_KINDS[kind], f"{kind} operations")
        if problem:
            return "ops", problem
    widths = opts["widths"]
    if not isinstance(widths, (list, tuple)) or not widths:
        return "widths", "expected a non-empty list of positive integers"
    for w in widths:
        if not _is_int(w) or not 1 <= w <= MAX_WIDTH:
            return "widths", f"expected positive integers (at most {MAX_WIDTH}), got {_text(w)}"
    if len(set(widths)) != len(widths):
        return "widths", "the widths must be distinct"
    if not isinstance(opts["skip"], bool):
        return "skip", f"expected true or false, got {_text(opts['skip'])}"
    return None


def chain_params(kind: str = "cnn", max_layers: int = 4, min_layers: int = 1, ops=None,
                 widths=DEFAULT_WIDTHS, skip: bool = True) -> List[Param]:
    problem = option_problem("chain", {"kind": kind, "max_layers": max_layers, "min_layers": min_layers,
                                       "ops": ops or None, "widths": widths, "skip": skip})
    if problem:
        raise ValueError(f"{problem[0]}: {problem[1]}")
    ops = tuple(ops) if ops else (CNN_OPS if kind == "cnn" else MLP_OPS)
    params: List[Param] = [Integer("num_layers", {}, int(min_layers), int(max_layers))]
    for i in range(int(max_layers)):
        when = {} if i < min_layers else {"num_layers": tuple(range(i + 1, max_layers + 1))}
        params.append(Categorical(f"layer{i}_op", when, ops))
        params.append(Categorical(f"layer{i}_width", when, tuple(widths)))
        if skip and i > 0:
            params.append(Categorical(f"layer{i}_skip", when,
                                      ("none", "stem") + tuple(f"layer{j}" for j in range(i - 1))))
    return params


def nb201_params(ops=NB201_OPS) -> List[Param]:
    problem = option_problem("nb201", {"ops": list(ops)})
    if problem:
        raise ValueError(f"{problem[0]}: {problem[1]}")
    return [Categorical(f"edge_{to}_{frm}", {}, tuple(ops)) for to, frm in NB201_EDGES]


def nb201_arch_str(config: Mapping[str, Any]) -> str:
    """``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` from a configuration of the nb201 space."""
    nodes = []
    for to in (1, 2, 3):
        nodes.append("|" + "|".join(f"{config[f'edge_{to}_{frm}']}~{frm}" for frm in range(to)) + "|")
    return "+".join(nodes)


def nb201_config(arch_str: str) -> Dict[str, str]:
    """The nb201 configuration of a NAS-Bench-201 ``arch_str``."""
    config = {}
    nodes = arch_str.split("+")
    if len(nodes) != 3:
        raise ValueError(f"not a NAS-Bench-201 arch_str: {arch_str!r}")
    for to, node in enumerate(nodes, start=1):
        edges = [e for e in node.strip("|").split("|") if e]
        if len(edges) != to:
            raise ValueError(f"not a NAS-Bench-201 arch_str: {arch_str!r}")
        for e in edges:
            op, _, frm = e.partition("~")
            if op not in NB201_OPS or not frm.isdigit() or int(frm) >= to:
                raise ValueError(f"not a NAS-Bench-201 arch_str: {arch_str!r}")
            config[f"edge_{to}_{frm}"] = op
    return config


def nb201_canonical(config: Mapping[str, Any]) -> str:
    """The function an nb201 cell computes, as a string: equal for equivalent cells.

    Each node is the sum of its incoming edges' operations applied to their source nodes; a
    ``none`` edge, and any operation on a node that is always zero, contributes nothing (so an
    edge's operation is dead when its source is cut off from the input or its target from the
    output); ``skip_connect`` passes its source's terms on; a sum is a sorted multiset of terms,
    so cells that differ by the order of a sum (e.g. swapped intermediate nodes) are equal. As
    NAS-Bench-201's own ``to_unique_str(consider_zero=True)``, with zero terms dropped."""
    nodes: List[List[str]] = [["x"]]
    for to in (1, 2, 3):
        terms: List[str] = []
        for frm in range(to):
            op, source = config[f"edge_{to}_{frm}"], nodes[frm]
            if op == "none" or not source:
                continue
            terms.extend(source if op == "skip_connect" else [f"{op}({'+'.join(source)})"])
        nodes.append(sorted(terms))
    return "+".join(nodes[3]) or "zero"


def config_key(config: Mapping[str, Any]) -> str:
    """The generic canonical form of a configuration (for duplicate detection): itself."""
    return json.dumps(dict(config), sort_keys=True, default=str)


def nb201_key(config: Mapping[str, Any]) -> str:
    """The canonical form of a configuration of a space with the nb201 cell: the cell's
    :func:`nb201_canonical` and the other parameters (e.g. hyperparameters) as they are."""
    edges = {f"edge_{to}_{frm}" for to, frm in NB201_EDGES}
    rest = {k: v for k, v in config.items() if k not in edges}
    return nb201_canonical(config) + (" " + config_key(rest) if rest else "")


def canonical_key(builtin: Optional[str]) -> Callable[[Mapping[str, Any]], str]:
    """The canonical-form hook of a space built on ``builtin`` (None: no builtin part)."""
    return nb201_key if builtin == "nb201" else config_key


def builtin_params(name: str, options: Mapping[str, Any]) -> List[Param]:
    opts = {**BUILTIN_OPTIONS[name], **options}
    if name == "chain":
        return chain_params(**opts)
    return nb201_params(tuple(opts["ops"]))
