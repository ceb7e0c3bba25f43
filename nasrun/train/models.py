"""Child networks built from a configuration, and their cost (parameters, multiply-accumulates).

* :func:`build_chain` - the ``chain`` space (``nasrun.space.builtin``): a stem, then
  ``num_layers`` layers; layer ``i`` applies ``layer{i}_op`` with ``layer{i}_width`` output
  channels (units for ``kind: mlp``) and, when ``layer{i}_skip`` is ``stem`` or ``layer{j}``, adds
  that earlier output (through a 1x1 convolution / linear projection when the widths differ).
  CNN layers keep the spatial size (stride 1); the head is global average pooling and a linear
  classifier. CNN stem: conv3x3 to ``stem_width`` + BN + ReLU. MLP stem: the flattened input.
* :func:`build_nb201` - the NAS-Bench-201 macro network: conv stem, ``cells`` cells of ``C``
  channels, a residual reduction block, ``cells`` cells of 2C, a reduction, ``cells`` cells of
  4C, BN-ReLU, global pooling, linear. Each cell is the 4-node DAG of the ``nb201`` space
  (``edge_<to>_<from>`` in none/skip_connect/nor_conv_1x1/nor_conv_3x3/avg_pool_3x3).
* :func:`count_params` and :func:`count_macs` (forward hooks on Conv2d/Linear; pooling, BN and
  additions are not counted: they are negligible next to convolutions).

This module imports only torch and the standard library: ``nasrun export`` copies its source
verbatim into the exported ``model.py``, so the exported network is this very code.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

NB201_EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (to, from); = nasrun.space's

MLP_ACTS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}


def _conv_bn_relu(cin: int, cout: int, k: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=False))


class _SepConv(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),
                         nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class _Pool(nn.Module):
    """3x3 pooling (stride 1), then a 1x1 projection when the width changes."""

    def __init__(self, kind: str, cin: int, cout: int):
        super().__init__()
        self.pool = (nn.MaxPool2d(3, 1, 1) if kind == "max"
                     else nn.AvgPool2d(3, 1, 1, count_include_pad=False))
        self.proj = None if cin == cout else nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x):
        x = self.pool(x)
        return x if self.proj is None else self.proj(x)


def _cnn_op(op: str, cin: int, cout: int) -> nn.Module:
    if op in ("conv1x1", "conv3x3", "conv5x5"):
        return _conv_bn_relu(cin, cout, int(op[4]))
    if op == "sepconv3x3":
        return _SepConv(cin, cout)
    if op in ("maxpool3x3", "avgpool3x3"):
        return _Pool(op[:3], cin, cout)
    raise ValueError(f"unknown cnn operation {op!r}")


class ChainNet(nn.Module):
    def __init__(self, stem: nn.Module, layers: Sequence[nn.Module],
                 skips: Sequence[str], projections: Mapping[str, nn.Module],
                 head: nn.Module):
        super().__init__()
        self.stem = stem
        self.layers = nn.ModuleList(layers)
        self.skips = list(skips)
        self.projections = nn.ModuleDict(dict(projections))
        self.head = head

    def forward(self, x):
        outs = {"stem": self.stem(x)}
        h = outs["stem"]
        for i, layer in enumerate(self.layers):
            h = layer(h)
            src = self.skips[i]
            if src != "none":
                s = outs[src]
                key = f"{i}"
                if key in self.projections:
                    s = self.projections[key](s)
                h = h + s
            outs[f"layer{i}"] = h
        return self.head(h)


def build_chain(config: Mapping[str, Any], input_shape: Tuple[int, ...], num_classes: int,
                kind: str = "cnn", stem_width: int = 16) -> ChainNet:
    """The chain network of ``config`` for inputs of ``input_shape`` (without the batch dim)."""
    n = int(config["num_layers"])
    if kind == "cnn":
        if len(input_shape) != 3:
            raise ValueError(f"a cnn needs images (C, H, W), got inputs of shape {tuple(input_shape)}")
        stem = _conv_bn_relu(input_shape[0], stem_width, 3)
        width0 = stem_width
    elif kind == "mlp":
        stem = nn.Flatten()
        width0 = 1
        for d in input_shape:
            width0 *= int(d)
    else:
        raise ValueError(f"kind must be 'cnn' or 'mlp', not {kind!r}")
    widths = {"stem": width0}
    layers, skips, projections = [], [], {}
    cin = width0
    for i in range(n):
        op, w = config[f"layer{i}_op"], int(config[f"layer{i}_width"])
        if kind == "cnn":
            layers.append(_cnn_op(op, cin, w))
        else:
            if op not in MLP_ACTS:
                raise ValueError(f"unknown mlp activation {op!r}")
            layers.append(nn.Sequential(nn.Linear(cin, w), MLP_ACTS[op]()))
        src = config.get(f"layer{i}_skip", "none") if i > 0 else "none"
        if src != "none":
            if src not in widths:
                raise ValueError(f"layer{i}_skip: {src!r} is not an earlier output")
            if widths[src] != w:
                projections[str(i)] = (nn.Conv2d(widths[src], w, 1, bias=False) if kind == "cnn"
                                       else nn.Linear(widths[src], w, bias=False))
        skips.append(src)
        widths[f"layer{i}"] = w
        cin = w
    head: nn.Module
    if kind == "cnn":
        head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))
    else:
        head = nn.Linear(cin, num_classes)
    return ChainNet(stem, layers, skips, projections, head)


# -- NAS-Bench-201 --------------------------------------------------------------------------------
class _Zero(nn.Module):
    def forward(self, x):
        return x * 0.0


class _ReLUConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int, stride: int = 1):
        super().__init__(nn.ReLU(), nn.Conv2d(cin, cout, k, stride, padding=k // 2, bias=False),
                         nn.BatchNorm2d(cout))


def _nb201_op(op: str, c: int) -> nn.Module:
    if op == "none":
        return _Zero()
    if op == "skip_connect":
        return nn.Identity()
    if op == "nor_conv_1x1":
        return _ReLUConvBN(c, c, 1)
    if op == "nor_conv_3x3":
        return _ReLUConvBN(c, c, 3)
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    raise ValueError(f"unknown nb201 operation {op!r}")


class NB201Cell(nn.Module):
    """Node j = sum over i < j of op_{j,i}(node i); the output is node 3 (same shape as the input)."""

    def __init__(self, config: Mapping[str, Any], c: int):
        super().__init__()
        self.edges = nn.ModuleDict({f"{to}_{frm}": _nb201_op(config[f"edge_{to}_{frm}"], c)
                                    for to, frm in NB201_EDGES})

    def forward(self, x):
        nodes = [x]
        for to in (1, 2, 3):
            nodes.append(sum(self.edges[f"{to}_{frm}"](nodes[frm]) for frm in range(to)))
        return nodes[3]


class _ResReduce(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.a = _ReLUConvBN(cin, cout, 3, 2)
        self.b = _ReLUConvBN(cout, cout, 3, 1)
        self.short = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(cin, cout, 1, bias=False))

    def forward(self, x):
        return self.b(self.a(x)) + self.short(x)


def build_nb201(config: Mapping[str, Any], input_shape: Tuple[int, ...], num_classes: int,
                channels: int = 16, cells: int = 1) -> nn.Module:
    if len(input_shape) != 3:
        raise ValueError(f"the nb201 network needs images (C, H, W), got {tuple(input_shape)}")
    mods: List[nn.Module] = [nn.Conv2d(input_shape[0], channels, 3, padding=1, bias=False),
                             nn.BatchNorm2d(channels)]
    c = channels
    for stage in range(3):
        if stage:
            mods.append(_ResReduce(c, 2 * c))
            c *= 2
        mods.extend(NB201Cell(config, c) for _ in range(cells))
    mods += [nn.BatchNorm2d(c), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
             nn.Linear(c, num_classes)]
    return nn.Sequential(*mods)


# -- cost -----------------------------------------------------------------------------------------
def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_shape: Tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass on one sample (Conv2d and Linear layers)."""
    total = [0]

    def conv_hook(m: nn.Conv2d, inp, out):
        kh, kw = m.kernel_size
        total[0] += out[0].numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m: nn.Linear, inp, out):
        total[0] += m.in_features * m.out_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        p = next(model.parameters(), None)
        x = torch.zeros((1,) + tuple(input_shape), device=p.device if p is not None else None)
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return int(total[0])


def build_model(space_builtin: str, space_options: Mapping[str, Any], config: Mapping[str, Any],
                input_shape: Tuple[int, ...], num_classes: int,
                objective_options: Optional[Mapping[str, Any]] = None) -> nn.Module:
    """The child network for a spec's space (``chain`` or ``nb201``).

    Macro options read from ``objective.options``: ``stem_width`` (chain cnn, default 16),
    ``nb201_channels`` (default 16) and ``nb201_cells`` (cells per stage, default 1).
    """
    opts: Dict[str, Any] = dict(objective_options or {})
    if space_builtin == "chain":
        return build_chain(config, input_shape, num_classes, kind=space_options.get("kind", "cnn"),
                           stem_width=int(opts.get("stem_width", 16)))
    if space_builtin == "nb201":
        return build_nb201(config, input_shape, num_classes, channels=int(opts.get("nb201_channels", 16)),
                           cells=int(opts.get("nb201_cells", 1)))
    raise ValueError("a 'train' objective needs a builtin architecture space (chain or nb201)")
