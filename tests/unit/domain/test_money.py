from decimal import Decimal

import pytest
from data_pipeline.domain import money
from data_pipeline.domain.money import LIMIT, parse_decimal, parse_money
from data_pipeline.errors import InvalidPayload
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (186, Decimal("186")),
        (343.85, Decimal("343.85")),
        ("15.00", Decimal("15")),
        (" 7.5 ", Decimal("7.5")),
        ({"amount": 279.5, "currency": "SAR"}, Decimal("279.5")),
        ({"percent": "15.00", "amount": {"amount": 34.5, "currency": "SAR"}}, Decimal("34.5")),
        ("١٥", Decimal("15")),  # Arabic-Indic digits are digits
        (0.1, Decimal("0.1")),
    ],
)
def test_every_documented_amount_shape_parses_exactly(raw, expected):
    assert parse_decimal(raw, field="x") == expected


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_absent_amounts_are_none(raw):
    assert parse_decimal(raw, field="x") is None


@pytest.mark.parametrize(
    "raw",
    [
        True,
        "abc",
        "NaN",
        "Infinity",
        float("inf"),
        [1],
        {"currency": "SAR"},
        {"amount": {"currency": "SAR"}},
        {"amount": {"amount": {"amount": 1}}},  # money nests twice at most
        "1e20",
        10**15,
    ],
)
def test_unusable_amounts_are_rejected_naming_the_field(raw):
    with pytest.raises(InvalidPayload, match=r"order\.total"):
        parse_decimal(raw, field="order.total")


def test_money_keeps_its_currency_upper_cased():
    assert parse_money({"amount": "10", "currency": "sar"}, field="x").currency == "SAR"


@given(st.decimals(min_value=-(LIMIT - 1), max_value=LIMIT - 1, places=4, allow_nan=False))
def test_decimal_strings_round_trip_without_loss(value):
    assert parse_decimal(str(value), field="x") == value


@given(st.floats(min_value=-1e12, max_value=1e12, allow_nan=False))
def test_floats_convert_through_their_shortest_repr(value):
    parsed = parse_decimal(value, field="x")
    assert parsed == Decimal(repr(value)).quantize(Decimal("0.0001"))


@given(st.one_of(st.text(max_size=30), st.booleans(), st.lists(st.integers(), max_size=2)))
def test_arbitrary_input_never_raises_anything_but_invalid_payload(value):
    try:
        result = parse_decimal(value, field="x")
    except InvalidPayload:
        return
    assert result is None or abs(result) < LIMIT


def test_remembered_numbers_parse_as_they_did_the_first_time(monkeypatch):
    monkeypatch.setattr(money, "_NUMBERS_KEPT", 3)  # emptied every third new number
    for _ in range(2):  # the second round from memory (or after it was emptied)
        assert parse_decimal(1, field="x") == parse_decimal(1.0, field="x") == Decimal("1")
        assert parse_decimal(343.85, field="x") == Decimal("343.85")
        assert parse_decimal(0.00005, field="x") == Decimal("0.0000")  # half to even
        assert parse_decimal(0.00015, field="x") == Decimal("0.0002")
        with pytest.raises(InvalidPayload, match=r"order\.total"):
            parse_decimal(1e14, field="order.total")
    assert len(money._NUMBERS) <= 3
