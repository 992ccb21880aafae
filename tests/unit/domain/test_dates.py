from datetime import UTC, datetime, timedelta

import pytest
from data_pipeline.domain.dates import (
    _JS_DATE,
    RIYADH,
    _fast_js_date,
    _from_js_date,
    parse_optional_datetime,
    parse_salla_datetime,
)
from data_pipeline.errors import InvalidPayload
from hypothesis import given
from hypothesis import strategies as st

NOON_UTC = datetime(2022, 6, 26, 9, 21, 48, tzinfo=UTC)  # 12:21:48 in Riyadh


@pytest.mark.parametrize(
    "raw",
    [
        "Sun Jun 26 2022 12:21:48 GMT+0300",
        "Sun Jun 26 2022 12:21:48 GMT+0300 (Arabia Standard Time)",
        "2022-06-26 12:21:48",
        "2022-06-26T09:21:48Z",
        "2022-06-26T09:21:48.000000Z",
        "2022-06-26T12:21:48+03:00",
        {"date": "2022-06-26 12:21:48.000000", "timezone_type": 3, "timezone": "Asia/Riyadh"},
        {"date": "2022-06-26 09:21:48.000000", "timezone_type": 3, "timezone": "UTC"},
        {"date": "2022-06-26 12:21:48.000000", "timezone_type": 1, "timezone": "+03:00"},
        1656235308,
    ],
)
def test_every_documented_date_shape_means_the_same_instant(raw):
    assert parse_salla_datetime(raw, field="created_at") == NOON_UTC


def test_a_bare_date_is_midnight_in_riyadh():
    assert parse_salla_datetime("2023-07-27", field="d") == datetime(2023, 7, 26, 21, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "raw",
    [
        "yesterday",
        "2022-13-01 00:00:00",
        "Sun Foo 26 2022 12:21:48 GMT+0300",
        {"date": "2022-06-26 12:21:48", "timezone": "Mars/Olympus"},
        {"date": "2022-06-26 12:21:48", "timezone": "../../etc/passwd"},
        {"timezone": "Asia/Riyadh"},
        True,
        [2022],
        "1900-01-01 00:00:00",
        10**20,
    ],
)
def test_unparseable_dates_are_rejected_naming_the_field(raw):
    with pytest.raises(InvalidPayload, match="created_at"):
        parse_salla_datetime(raw, field="created_at")


def test_empty_optional_dates_are_none():
    assert parse_optional_datetime(None, field="d") is None
    assert parse_optional_datetime({"date": None}, field="d") is None


@given(st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2099, 1, 1)))
def test_js_and_php_renderings_of_any_riyadh_time_agree(local):
    moment = local.replace(microsecond=0, tzinfo=RIYADH)
    js = moment.strftime("%a %b %d %Y %H:%M:%S GMT+0300")
    php = {"date": moment.strftime("%Y-%m-%d %H:%M:%S.000000"), "timezone": "Asia/Riyadh"}
    assert parse_salla_datetime(js, field="d") == parse_salla_datetime(php, field="d")
    assert parse_salla_datetime(js, field="d").utcoffset() == timedelta(0)


@given(st.text(max_size=40))
def test_arbitrary_text_never_raises_anything_but_invalid_payload(text):
    try:
        parsed = parse_salla_datetime(text, field="d")
    except InvalidPayload:
        return
    assert parsed.tzinfo is not None


_TOKENS = st.one_of(
    st.sampled_from(["Sun", "Jun", "JUN", "26", "6", "2022", "12:21:48", "1:21:48", "GMT+0300"]),
    st.sampled_from(["GMT-0930", "GMT+1400", "GMT+1401", "GMT+0360", "GMT+03:0", "UTC+0300"]),
    st.sampled_from(["12:21", "24:00:00", "12:21:48.5", "00", "0000", "2022-01", "+202"]),
    st.text(alphabet="0123456789:+-T٣ ", max_size=9),
)


@pytest.mark.parametrize(
    "text",
    [
        "Sun Jun 26 2022 12:21:48 GMT+0300",
        "Sun Jun 26 2022 12:21:48 GMT-0930",
        "Sun Jun 26 2022 12:21:48 GMT+1400",
        "Sun Jun 26 2022 12:21:48 GMT+1401",  # beyond any real zone
        "Sun Jun 26 2022 12:21:48 GMT+0360",  # not minutes
        "Sun Jun 26 2022 12:21:48 GMT+03:0",
        "Sun Jun 26 2022 12:21 GMT+0300",
        "Sun Jun 26 2022 12:21:48.5 GMT+0300",
        "Sun Jun 31 2022 12:21:48 GMT+0300",
        "Sun Jun 26 +202 12:21:48 GMT+0300",
        "Sun Jun 26 ٢٠٢٢ 12:21:48 GMT+0300",
        "GMT Jun 26 2022 12:21:48 GMT+0300",
    ],
)
def test_the_js_fast_path_reads_what_the_general_path_reads(text):
    _assert_the_fast_path_agrees(text)


@given(st.dictionaries(st.integers(0, 5), _TOKENS, max_size=2))
def test_the_js_fast_path_accepts_only_what_the_general_path_reads_the_same(changes):
    tokens = ["Sun", "Jun", "26", "2022", "12:21:48", "GMT+0300"]  # one or two tokens changed
    for position, token in changes.items():
        tokens[position] = token
    _assert_the_fast_path_agrees(" ".join(tokens))


def _assert_the_fast_path_agrees(text):
    fast = _fast_js_date(text)
    if fast is None:
        return
    match = _JS_DATE.match(text)
    assert match is not None, text
    assert fast == _from_js_date(match, "d")
    assert fast.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text",
    [
        "2022-06-26 12:21:48.000000",
        "2022-06-26 12:21:48",
        "2022-06-26 12:21",
        " 2022-06-26 12:21:48.000000 ",
        "2022-06-26 12:21:48.5",
    ],
)
def test_php_dates_in_riyadh_read_as_riyadh_wall_time_however_written(text):
    php = {"date": text, "timezone_type": 3, "timezone": "Asia/Riyadh"}
    expected = datetime.fromisoformat(text.strip()).replace(tzinfo=RIYADH).astimezone(UTC)
    assert parse_salla_datetime(php, field="d") == expected


@pytest.mark.parametrize(
    "text", ["2022-06-26 12:21:48+01:00", "2022-06-26 12:21:48Z", "2022-06-31 12:21:48"]
)
def test_php_dates_with_an_offset_of_their_own_or_no_such_day_are_rejected(text):
    with pytest.raises(InvalidPayload, match="d: "):
        parse_salla_datetime({"date": text, "timezone": "Asia/Riyadh"}, field="d")
