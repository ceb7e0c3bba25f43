"""The JSON+arrays codec restores nested plain data exactly, and refuses what it cannot store."""
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nasrun.store.codec import TAG, decode, encode
from nasrun.store.sample import difference

DTYPES = st.sampled_from(["<f4", ">f8", "<f2", "<i8", ">i4", "<u2", "|u1", "|i1", "|b1", "<c16", "|S3"])
arrays = DTYPES.flatmap(lambda dt: hnp.arrays(np.dtype(dt), hnp.array_shapes(min_dims=0, max_dims=3,
                                                                              min_side=0, max_side=4)))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2 ** 130), max_value=2 ** 130),
    st.floats(allow_nan=True), st.text(max_size=8), st.binary(max_size=8),
    st.integers(-2 ** 63, 2 ** 63 - 1).map(np.int64), st.integers(0, 2 ** 64 - 1).map(np.uint64),
    st.floats(width=32).map(np.float32), st.floats().map(np.float64), st.booleans().map(np.bool_),
    st.complex_numbers(allow_nan=False).map(np.complex128), arrays)
keys = st.one_of(st.text(max_size=6), st.just(TAG), st.integers(-5, 5),
                 st.tuples(st.integers(0, 3), st.text(max_size=2)))
nested = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.tuples(inner, inner),
    st.dictionaries(keys, inner, max_size=4)), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(nested)
def test_round_trip_is_exact(value):
    text, arrs = encode(value)
    json.loads(text)  # a plain JSON document (Python's json; NaN/Infinity for non-finite floats)
    stored = [np.array(a, copy=True) for a in arrs]
    assert difference(value, decode(text, stored)) is None


def test_arrays_are_pulled_out_and_referenced():
    state = {"w": np.ones((2, 3), np.float32), "nested": [{"b": np.arange(3)}], 3: "int key"}
    text, arrs = encode(state)
    assert len(arrs) == 2 and "ndarray" in text
    out = decode(text, arrs)
    assert list(out) == ["w", "nested", 3] and out["w"].dtype == np.float32


@pytest.mark.parametrize("bad", [{1, 2}, object(), np.array([object()]), {"a": [lambda: 0]},
                                  np.zeros(2, dtype=[("x", "f4")])])
def test_refuses_what_it_cannot_store_naming_where(bad):
    with pytest.raises(TypeError, match="state"):
        encode({"inner": bad}, "state")


def test_malformed_document_is_a_value_error():
    with pytest.raises(ValueError):
        decode(json.dumps({TAG: "ndarray", "ref": 3}), [])
    with pytest.raises(ValueError):
        decode(json.dumps({TAG: "pickle", "data": "x"}), [])
