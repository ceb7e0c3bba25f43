"""The search-space DSL: sampling, conditions, mutation, encodings, sizes, built-in spaces."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nasrun.space import (
    NB201_OPS,
    Categorical,
    Float,
    Integer,
    SearchSpace,
    builtin_params,
    nb201_arch_str,
    nb201_config,
)


def hpo_space():
    return SearchSpace([
        Categorical("optimizer", {}, ("sgd", "adam")),
        Float("lr", {}, 1e-4, 1e-1, True),
        Float("momentum", {"optimizer": ("sgd",)}, 0.5, 0.99),
        Integer("batch_size", {}, 16, 256, True),
        Integer("depth", {}, 1, 5),
        Categorical("flag", {}, (True, False)),
    ])


@pytest.mark.parametrize("space", [hpo_space(), SearchSpace(builtin_params("chain", {})),
                                   SearchSpace(builtin_params("chain", {"kind": "mlp", "max_layers": 2})),
                                   SearchSpace(builtin_params("nb201", {}))],
                         ids=["hpo", "chain", "mlp", "nb201"])
def test_samples_and_mutations_stay_in_the_space(space):
    rng = np.random.default_rng(1)
    config = space.sample(rng)
    for _ in range(300):
        assert space.problems(config) == []
        new = space.mutate(config, rng)
        assert new != config  # every parameter here can change
        config = new


def test_conditions_decide_which_parameters_exist():
    space = hpo_space()
    rng = np.random.default_rng(0)
    seen = {"sgd": 0, "adam": 0}
    for _ in range(200):
        c = space.sample(rng)
        seen[c["optimizer"]] += 1
        assert ("momentum" in c) == (c["optimizer"] == "sgd")
    assert seen["sgd"] > 50 and seen["adam"] > 50
    assert space.problems({"optimizer": "adam", "lr": 0.01, "momentum": 0.9, "batch_size": 32,
                           "depth": 1, "flag": True}) == ["momentum: present but its condition is not met"]
    assert "momentum: missing" in space.problems({"optimizer": "sgd", "lr": 0.01, "batch_size": 32,
                                                  "depth": 1, "flag": True})


def test_range_and_unknown_problems():
    space = hpo_space()
    bad = {"optimizer": "rmsprop", "lr": 2.0, "batch_size": 8, "depth": 1.5, "flag": 1, "extra": 3}
    text = "\n".join(space.problems(bad))
    for name in ("optimizer", "lr", "batch_size", "depth", "flag", "extra"):
        assert name in text


def test_log_parameters_cover_their_decades_evenly():
    p = Float("lr", {}, 1e-4, 1e-0, True)
    rng = np.random.default_rng(0)
    values = np.array([p.sample(rng) for _ in range(4000)])
    decades = np.histogram(np.log10(values), bins=[-4, -3, -2, -1, 0])[0]
    assert decades.min() > 850 and decades.max() < 1150


@given(st.floats(0, 1))
def test_unit_encoding_round_trips(u):
    for p in [Float("a", {}, 1e-3, 10.0, True), Float("b", {}, -2.0, 3.0), Integer("c", {}, 3, 17),
              Integer("d", {}, 1, 1000, True), Categorical("e", {}, ("x", "y", "z"))]:
        v = p.from_unit(u)
        assert p.contains(v)
        assert p.from_unit(p.to_unit(v)) == pytest.approx(v)


def test_vector_encoding_marks_inactive_parameters():
    space = hpo_space()
    rng = np.random.default_rng(3)
    for _ in range(50):
        c = space.sample(rng)
        vec = space.to_vector(c)
        assert np.isnan(vec[2]) == ("momentum" not in c)
        back = space.from_vector(vec, rng)
        assert space.contains(back)
        assert back["optimizer"] == c["optimizer"] and back["depth"] == c["depth"]


def test_sizes():
    assert SearchSpace(builtin_params("nb201", {})).size() == 5 ** 6
    assert math.isinf(hpo_space().size())
    # chain, 2 layers at most, 2 ops, 2 widths: depth 1 -> 4; depth 2 -> 4 * 4 * 2 skip choices
    chain = SearchSpace(builtin_params("chain", {"max_layers": 3, "ops": ["conv3x3", "conv1x1"],
                                                 "widths": [8, 16]}))
    # depth1: 4; depth2: 4*4*2 (skip none/stem); depth3: 4*4*2 * 4*3 (skip none/stem/layer0)
    assert chain.size() == 4 + 32 + 32 * 12
    counted = {tuple(sorted(chain.sample(np.random.default_rng(i)).items())) for i in range(6000)}
    assert len(counted) <= chain.size()


def test_nb201_arch_strings_round_trip():
    s = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    c = nb201_config(s)
    assert c["edge_2_1"] == "avg_pool_3x3" and c["edge_3_2"] == "skip_connect"
    assert nb201_arch_str(c) == s
    space = SearchSpace(builtin_params("nb201", {}))
    assert space.contains(c)
    assert set(space["edge_1_0"].choices) == set(NB201_OPS)
    for bad in ["", "|none~0|", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|"]:
        with pytest.raises(ValueError):
            nb201_config(bad)


def test_space_definition_errors():
    with pytest.raises(ValueError, match="unknown or later"):
        SearchSpace([Float("m", {"opt": ("sgd",)}, 0, 1), Categorical("opt", {}, ("sgd",))])
    with pytest.raises(ValueError, match="log scale"):
        Float("lr", {}, 0.0, 1.0, True)
    with pytest.raises(ValueError, match="at least one choice"):
        Categorical("c", {}, ())
    with pytest.raises(ValueError, match="twice"):
        SearchSpace([Categorical("c", {}, (1,)), Categorical("c", {}, (2,))])
    with pytest.raises(ValueError, match="not a value"):
        SearchSpace([Categorical("opt", {}, ("sgd",)), Float("m", {"opt": ("adam",)}, 0, 1)])


def test_dict_round_trip():
    space = hpo_space()
    assert SearchSpace.from_dict(space.to_dict()) == space
