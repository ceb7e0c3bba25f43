import pytest
import torch

from nasrun.space import SearchSpace, builtin_params
from nasrun.space.builtin import CNN_OPS, MLP_OPS, NB201_EDGES, NB201_OPS
from nasrun.train.models import NB201Cell, build_chain, build_nb201, count_macs, count_params


@pytest.mark.parametrize("op", CNN_OPS)
def test_every_cnn_op_keeps_spatial_size_and_sets_width(op):
    cfg = {"num_layers": 2, "layer0_op": op, "layer0_width": 8, "layer1_op": op, "layer1_width": 12,
           "layer1_skip": "stem"}
    m = build_chain(cfg, (1, 8, 8), 10, stem_width=4)
    feats = {}
    m.layers[1].register_forward_hook(lambda mod, i, o: feats.setdefault("l1", o))
    out = m(torch.randn(3, 1, 8, 8))
    assert out.shape == (3, 10)
    assert feats["l1"].shape == (3, 12, 8, 8)
    assert "1" in m.projections  # stem (4) -> 12 needs a projection


@pytest.mark.parametrize("op", MLP_OPS)
def test_every_mlp_activation(op):
    cfg = {"num_layers": 1, "layer0_op": op, "layer0_width": 5}
    m = build_chain(cfg, (1, 8, 8), 10, kind="mlp")
    assert m(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    assert isinstance(m.layers[0][1], type(m.layers[0][1]))


def test_skip_adds_the_named_earlier_output():
    cfg = {"num_layers": 3, "layer0_op": "relu", "layer0_width": 4, "layer1_op": "relu",
           "layer1_width": 4, "layer1_skip": "none", "layer2_op": "relu", "layer2_width": 4,
           "layer2_skip": "layer0"}
    m = build_chain(cfg, (3,), 2, kind="mlp")
    assert m.skips == ["none", "none", "layer0"] and len(m.projections) == 0
    x = torch.randn(2, 3)
    h0 = m.layers[0](x)
    h2 = m.layers[2](m.layers[1](h0)) + h0
    assert torch.allclose(m(x), m.head(h2))


def test_random_chain_configs_build(tmp_path):
    space = SearchSpace(builtin_params("chain", {"kind": "cnn", "max_layers": 4}))
    import numpy as np
    rng = np.random.default_rng(0)
    for _ in range(20):
        cfg = space.sample(rng)
        assert build_chain(cfg, (3, 8, 8), 10)(torch.randn(1, 3, 8, 8)).shape == (1, 10)


@pytest.mark.parametrize("op", NB201_OPS)
def test_nb201_cell_keeps_shape_for_every_op(op):
    cfg = {f"edge_{t}_{f}": op for t, f in NB201_EDGES}
    cell = NB201Cell(cfg, 6)
    x = torch.randn(2, 6, 8, 8)
    y = cell(x)
    assert y.shape == x.shape
    if op == "none":
        assert torch.count_nonzero(y) == 0


def test_nb201_cell_skip_only_is_sum_of_paths():
    cfg = {f"edge_{t}_{f}": "skip_connect" for t, f in NB201_EDGES}
    x = torch.randn(1, 2, 4, 4)
    # n1 = x, n2 = x + n1 = 2x, n3 = x + n1 + n2 = 4x
    assert torch.allclose(NB201Cell(cfg, 2)(x), 4 * x)


def test_nb201_network_reduces_twice():
    cfg = {f"edge_{t}_{f}": "nor_conv_3x3" for t, f in NB201_EDGES}
    net = build_nb201(cfg, (3, 32, 32), 10, channels=4, cells=1)
    shapes = []
    for m in net:
        if isinstance(m, NB201Cell):
            m.register_forward_hook(lambda mod, i, o: shapes.append(tuple(o.shape)))
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert shapes == [(2, 4, 32, 32), (2, 8, 16, 16), (2, 16, 8, 8)]


def test_params_and_macs_by_hand():
    # one conv3x3 layer, width 2, on a 1x4x4 input, stem width 2:
    cfg = {"num_layers": 1, "layer0_op": "conv3x3", "layer0_width": 3}
    m = build_chain(cfg, (1, 4, 4), 5, stem_width=2)
    # stem conv 1->2 (18) + BN(4); layer conv 2->3 (54) + BN (6); head linear 3->5 (15 + 5)
    assert count_params(m) == 18 + 4 + 54 + 6 + 20
    # MACs: stem 16 px * 2 out * 1 in * 9 = 288; layer 16 * 3 * 2 * 9 = 864; head 15
    assert count_macs(m, (1, 4, 4)) == 288 + 864 + 15


def test_mlp_macs_by_hand():
    m = build_chain({"num_layers": 1, "layer0_op": "relu", "layer0_width": 7}, (1, 2, 3), 4, kind="mlp")
    assert count_params(m) == 6 * 7 + 7 + 7 * 4 + 4
    assert count_macs(m, (1, 2, 3)) == 6 * 7 + 7 * 4


def test_bad_configs_are_errors():
    with pytest.raises(ValueError, match="unknown cnn operation"):
        build_chain({"num_layers": 1, "layer0_op": "bogus", "layer0_width": 4}, (1, 8, 8), 10)
    with pytest.raises(ValueError, match="needs images"):
        build_chain({"num_layers": 1, "layer0_op": "conv3x3", "layer0_width": 4}, (64,), 10)
