"""serialize(): the plain-pickle fast path takes only values cloudpickle would write the same way."""

from __future__ import annotations

import pickle

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from zray._private.core.serialization import deserialize, is_plain, serialize

scalars = st.one_of(
    st.integers(), st.floats(allow_nan=False), st.text(), st.binary(), st.booleans(), st.none()
)
plain_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=4), inner, max_size=4),
    ),
    max_leaves=12,
)


@given(plain_values)
def test_every_value_round_trips(value):
    meta, buffers, refs = serialize(value)
    assert refs == []
    assert deserialize(meta, buffers) == value


def test_builtin_values_take_the_fast_path():
    for value in (1, 2.5, "s", b"b", True, None, (1, "a"), [1, [2, 3]], {"k": (1, 2)}, ((), {})):
        assert is_plain(value), value
        meta, buffers, _ = serialize(value)
        assert meta == pickle.dumps(value, protocol=5) and buffers == []


def test_values_that_need_cloudpickle_do_not():
    class Local:  # pickled by value by cloudpickle; by reference (wrongly) by pickle
        pass

    for value in (
        Local(),
        lambda: 1,
        np.zeros(3),
        [[[1]]],
        list(range(17)),
        {1: Local()},
        {(1, 2): 3},
        bytearray(b"x"),
    ):
        assert not is_plain(value), value
    meta, _, _ = serialize(Local())
    assert type(deserialize(meta, [])).__name__ == "Local"
