"""The warehouse's batch encoding (adapters/clickhouse_batches.py): what a server is sent is the
same Native bytes chDB gets, lz4-framed, as clickhouse-connect's own inserts are."""

import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import lz4.frame
import pytest
from clickhouse_connect.datatypes.registry import get_from_name
from clickhouse_connect.driver.insert import InsertContext
from clickhouse_connect.driver.transform import NativeTransform
from data_pipeline.adapters.clickhouse_batches import (
    WRITTEN_COLUMNS,
    BatchEncoder,
    _fast_writers,
)
from data_pipeline.adapters.warehouse import LoadBatch, RawEvent
from data_pipeline.errors import TransientError

ROOT = Path(__file__).resolve().parents[3]

TYPES = {
    "raw_events": (
        "UInt64",
        "FixedString(64)",
        "LowCardinality(String)",
        "Nullable(DateTime64(3, 'UTC'))",
        "DateTime64(3, 'UTC')",
        "LowCardinality(String)",
        "String",
    )
}


def batch():
    event = RawEvent(
        7, "a" * 64, "order.created", None, datetime(2026, 12, 6, tzinfo=UTC), "w", b"{}"
    )
    return LoadBatch(raw_events=[event])


def test_columns_match_the_types_given():
    assert len(WRITTEN_COLUMNS["raw_events"]) == len(TYPES["raw_events"])


def test_a_server_gets_the_same_native_bytes_lz4_framed():
    plain = BatchEncoder("analytics", TYPES, None).encode(batch())
    framed = BatchEncoder("analytics", TYPES, "lz4").encode(batch())
    columns, native = plain.inserts["raw_events"]
    assert columns == WRITTEN_COLUMNS["raw_events"]
    assert lz4.frame.decompress(framed.inserts["raw_events"][1]) == native
    assert not native.startswith(b"INSERT")  # the statement is the client's, not the data's
    assert plain.touched == {}  # raw events change no current state


def test_a_value_its_column_cannot_hold_fails_the_encoding():
    bad = LoadBatch(raw_events=[RawEvent(-1, "a" * 64, "x", None, datetime.now(UTC), "w", b"{}")])
    with pytest.raises(TransientError, match=r"raw_events failed: .*merchant_id"):
        BatchEncoder("analytics", TYPES, None).encode(bad)


MONEY_VALUES = [
    Decimal("0"),
    Decimal("-0.0001"),
    Decimal("12.5"),
    Decimal("-12.34567"),  # more digits than the scale: truncated toward zero, as the library does
    Decimal("99999999999999.9999"),
    Decimal("1E+3"),
    Decimal("0.00001"),
    None,
]


@pytest.mark.parametrize(
    ("type_name", "values"),
    [
        ("Nullable(Decimal(18, 4))", MONEY_VALUES),
        ("Decimal(18, 4)", [v for v in MONEY_VALUES if v is not None]),
        ("Decimal(9, 2)", [Decimal("1.005"), Decimal("-7"), Decimal("1234567.89"), Decimal("1.5")]),
        ("Array(Decimal(18, 4))", [[Decimal("1.5"), Decimal("-2.25")], [], [Decimal("0.0001")]]),
        ("Decimal(18, 4)", [Decimal("1.5"), 2, 3.25, "4.5"]),  # not all Decimals: the library's
        # Equal values in other exponents, repeated (scaled once, then looked up)
        ("Decimal(18, 4)", [Decimal("12.5"), Decimal("12.5000"), Decimal("1.25E+1")] * 2),
        ("Decimal(18, 4)", [Decimal("-12.34567"), Decimal("-12.345670"), Decimal("0E-9")]),
    ],
)
def test_decimals_are_written_exactly_as_the_library_writes_them(type_name, values):
    library = get_from_name(type_name)
    ours = _fast_writers(library)
    assert ours is not library  # a copy: the library's shared instance is left alone
    assert type(get_from_name(type_name)) is type(library)
    assert ours.name == library.name
    assert _column_bytes(ours, values) == _column_bytes(library, values)
    assert _column_bytes(ours, values) == _column_bytes(library, values)  # values seen before


UTC3 = timezone(timedelta(hours=3))
MOMENTS = [
    datetime(2026, 12, 6, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 12, 7, 2, 59, 59, 500, tzinfo=UTC3),  # another zone, sub-millisecond
    datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),  # before the epoch: floored
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(2299, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
]


@pytest.mark.parametrize(
    ("type_name", "values"),
    [
        ("DateTime64(3, 'UTC')", MOMENTS),
        ("Nullable(DateTime64(3, 'UTC'))", [None, *MOMENTS, None]),
        ("DateTime64(6, 'UTC')", MOMENTS),
        ("DateTime64(0, 'UTC')", MOMENTS),
        ("DateTime64(9, 'UTC')", MOMENTS),  # finer than microseconds: the library's
        ("DateTime64(3, 'UTC')", [MOMENTS[0].replace(tzinfo=None), MOMENTS[1]]),  # naive: too
        ("DateTime64(3, 'UTC')", [1_700_000_000_000, 0]),  # ticks already: the library's
        ("Array(DateTime64(3, 'UTC'))", [MOMENTS[:2], [], MOMENTS[2:]]),
        ("Array(String)", [("a", "bé"), (), ["عطر"], ("",)]),
        ("Array(Nullable(UInt64))", [[1, None], [], [2**64 - 1]]),
        ("Array(LowCardinality(String))", [["x", "y"], ["x"], []]),
        ("Array(Array(String))", [[("a", "b"), ()], [], [[], ["c"]]]),
        (
            "Array(Array(Decimal(18, 4)))",
            [[[Decimal("1.5")], []], [], [[Decimal("-0.0001"), Decimal("2")]]],
        ),
        ("Array(String)", []),
    ],
)
def test_arrays_and_datetimes_are_written_exactly_as_the_library_writes_them(type_name, values):
    library = get_from_name(type_name)
    ours = _fast_writers(library)
    assert ours is not library and type(ours) is not type(library)
    assert type(get_from_name(type_name)) is type(library)  # the registry's is left alone
    assert ours.name == library.name
    assert _column_bytes(ours, values) == _column_bytes(library, values)


def _column_bytes(column_type, values):
    context = InsertContext("t", ("c",), [column_type], data=[(value,) for value in values])
    return b"".join(NativeTransform.build_insert(context))


def test_a_batch_is_the_block_the_library_itself_would_send():
    events = [
        RawEvent(
            7 + n,
            f"{n:064d}",
            "order.created",
            None,
            datetime(2026, 12, 6, tzinfo=UTC),
            "webhook",
            f'{{"n": {n}}}'.encode(),
        )
        for n in range(3)
    ]
    columns, native = (
        BatchEncoder("analytics", TYPES, None)
        .encode(LoadBatch(raw_events=events))
        .inserts["raw_events"]
    )
    types = [get_from_name(name) for name in TYPES["raw_events"]]
    rows = [tuple(getattr(e, f) for f in RawEvent.__dataclass_fields__) for e in events]
    library = b"".join(
        NativeTransform.build_insert(InsertContext("analytics.raw_events", columns, types, rows))
    )
    assert library.endswith(native) and library[: -len(native)].startswith(b"INSERT INTO")


def test_a_body_goes_as_its_utf8_bytes_the_same_as_its_text_would():
    text = '{"data":{"name":"عطر الورد","city":"الرياض"}}'

    def native(body):
        event = RawEvent(
            7, "a" * 64, "order.created", None, datetime(2026, 12, 6, tzinfo=UTC), "w", body
        )
        encoded = BatchEncoder("analytics", TYPES, None).encode(LoadBatch(raw_events=[event]))
        return encoded.inserts["raw_events"][1]

    assert native(text.encode()) == native(text)
    assert text.encode() in native(text.encode())


def test_encoding_does_not_import_pandas():
    # The library's insert context imports pandas to check for a DataFrame: 0.2 s in every
    # import worker process, and pandas is installed here (chDB needs it), so this can fail.
    code = (
        "import sys\n"
        "from tests.unit.adapters.test_batch_encoder import TYPES, batch\n"
        "from data_pipeline.adapters.clickhouse_batches import BatchEncoder\n"
        "BatchEncoder('analytics', TYPES, None).encode(batch())\n"
        "assert 'pandas' not in sys.modules, 'pandas was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
