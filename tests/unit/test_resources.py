"""zray._private.common.resources: fixed-point resource amounts (1/10000 units)."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zray._private.common import resources as R

UNIT = R.UNIT
FAST = settings(max_examples=300, deadline=None)


# ------------------------------------------------------------------ round trips


def test_unit_is_ten_thousandth():
    assert UNIT == 10000
    assert R.to_units({"CPU": 1}) == {"CPU": 10000}
    assert R.to_units({"CPU": 0.5}) == {"CPU": 5000}
    assert R.to_units({"CPU": 0.0001}) == {"CPU": 1}
    assert R.to_units({"CPU": 4, "GPU": 2.0}) == {"CPU": 40000, "GPU": 20000}


def test_zero_amounts_are_dropped():
    assert R.to_units({"CPU": 0, "GPU": 0.0, "x": -0.0}) == {}
    assert R.to_units({}) == {}


def test_units_are_ints():
    out = R.to_units({"CPU": 0.25, "GPU": 3.0, "x": 7})
    assert all(type(v) is int for v in out.values())


@FAST
@given(st.integers(min_value=1, max_value=UNIT))
def test_fraction_round_trip(k):
    """Every amount in (0, 1] with at most four decimals survives float -> units -> float."""
    amount = k / UNIT
    units = R.to_units({"r": amount})
    assert units == {"r": k}
    assert R.to_floats(units) == {"r": amount}
    # The decimal literal and the quotient are the same double.
    assert float(str(Decimal(k).scaleb(-4))) == amount


@FAST
@given(st.integers(min_value=1, max_value=10**9), st.booleans())
def test_whole_round_trip(n, as_float):
    amount = float(n) if as_float else n
    units = R.to_units({"r": amount})
    assert units == {"r": n * UNIT}
    assert R.to_floats(units) == {"r": float(n)}


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["CPU", "GPU", "memory", "custom", "ü", "a b", ""]),
        st.one_of(st.integers(0, UNIT).map(lambda k: k / UNIT), st.integers(0, 1000)),
        max_size=6,
    )
)
def test_dict_round_trip(amounts):
    units = R.to_units(amounts)
    assert set(units) == {name for name, v in amounts.items() if v}
    assert R.to_floats(units) == {name: float(v) for name, v in amounts.items() if v}
    assert R.to_units(R.to_floats(units)) == units


# ------------------------------------------------------------------ exact sums


def test_point_one_plus_point_two_is_exact():
    assert 0.1 + 0.2 != 0.3  # the float problem fixed point avoids
    total = {}
    R.add(total, R.to_units({"CPU": 0.1}))
    R.add(total, R.to_units({"CPU": 0.2}))
    assert total == R.to_units({"CPU": 0.3})
    assert R.to_floats(total) == {"CPU": 0.3}


def test_ten_tenths_make_one_and_subtract_back_to_zero():
    available = R.to_units({"CPU": 1})
    tenth = R.to_units({"CPU": 0.1})
    for _ in range(10):
        assert R.fits(tenth, available)
        R.subtract(available, tenth)
    assert available == {"CPU": 0}
    assert not R.fits(tenth, available)
    for _ in range(10):
        R.add(available, tenth)
    assert available == {"CPU": UNIT}
    assert R.to_floats(available) == {"CPU": 1.0}


@FAST
@given(st.lists(st.integers(min_value=1, max_value=UNIT), min_size=1, max_size=30))
def test_sums_of_fractions_are_exact(ks):
    total = {}
    for k in ks:
        R.add(total, R.to_units({"CPU": k / UNIT}))
    assert total == {"CPU": sum(ks)}
    for k in ks:
        R.subtract(total, R.to_units({"CPU": k / UNIT}))
    assert total == {"CPU": 0}


def test_fits_add_subtract_shape_key():
    need = {"CPU": 5000, "GPU": 10000}
    assert R.fits(need, {"CPU": 5000, "GPU": 10000})
    assert not R.fits(need, {"CPU": 4999, "GPU": 10000})
    assert not R.fits(need, {"CPU": 5000})  # missing resource counts as zero
    assert R.fits({}, {})
    into = {"CPU": 1}
    R.add(into, {"CPU": 2, "x": 3})
    assert into == {"CPU": 3, "x": 3}
    R.subtract(into, {"x": 3, "y": 1})
    assert into == {"CPU": 3, "x": 0, "y": -1}
    assert R.shape_key({"b": 1, "a": 2}) == (("a", 2), ("b", 1))
    assert R.shape_key({"b": 1, "a": 2}) == R.shape_key({"a": 2, "b": 1})


def test_to_units_does_not_mutate_input():
    amounts = {"CPU": 0.5, "GPU": 0}
    R.to_units(amounts)
    assert amounts == {"CPU": 0.5, "GPU": 0}


# ------------------------------------------------------------------ invalid input


@pytest.mark.parametrize("amount", [-1, -0.5, -1e-9, -(10**20), float("-inf")])
def test_negative_raises_value_error(amount):
    with pytest.raises(ValueError, match="non-negative"):
        R.to_units({"CPU": amount})


@pytest.mark.parametrize("amount", ["1", b"1", None, [1], {"a": 1}, Fraction(1, 2), 1j, object()])
def test_non_number_raises_type_error(amount):
    with pytest.raises(TypeError, match="must be a number"):
        R.to_units({"CPU": amount})


@pytest.mark.parametrize("amount", [True, False])
def test_bool_raises_type_error(amount):
    with pytest.raises(TypeError, match="must be a number"):
        R.to_units({"CPU": amount})


@pytest.mark.parametrize("amount", [1.5, 1.0001, 2.25, 100.5, 1 + 1e-9])
def test_fractional_above_one_raises_value_error(amount):
    with pytest.raises(ValueError, match="whole numbers"):
        R.to_units({"CPU": amount})


@FAST
@given(st.floats(min_value=1.0, max_value=1e6, exclude_min=True, allow_nan=False))
def test_any_fractional_above_one_raises(amount):
    if amount == int(amount):
        assert R.to_units({"r": amount}) == {"r": int(amount) * UNIT}
    else:
        with pytest.raises(ValueError):
            R.to_units({"r": amount})


@pytest.mark.parametrize("name", [1, None, b"CPU", ("CPU",)])
def test_non_string_name_raises_type_error(name):
    with pytest.raises(TypeError, match="names must be strings"):
        R.to_units({name: 1})


@pytest.mark.parametrize("amount", [math.inf, math.nan])
def test_infinite_and_nan_amounts_raise_value_error(amount):
    # Found by this suite (to_units used to raise OverflowError for inf); fixed in 28a8161.
    with pytest.raises(ValueError, match="finite"):
        R.to_units({"CPU": amount})


@pytest.mark.parametrize("amount", [1e305, 1.7976931348623157e308])
def test_huge_finite_amount_is_converted_or_rejected_with_value_error(amount):
    try:
        units = R.to_units({"CPU": amount})
    except ValueError:
        return
    assert units == {"CPU": int(amount) * UNIT}


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0, max_value=1e300, allow_nan=False))
def test_every_representable_amount_converts_or_raises_value_error(amount):
    try:
        units = R.to_units({"r": amount})
    except ValueError:
        assert amount > 1 and amount != int(amount)
        return
    assert units == ({"r": round(amount * UNIT)} if round(amount * UNIT) else {})
