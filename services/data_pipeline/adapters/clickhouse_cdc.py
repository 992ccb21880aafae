"""The ClickHouse side of change data capture: one versioned table per captured table and a
view with the source's name that returns exactly the current rows.

`<db>.<table>__versions`: every change, keyed (source key, commit LSN, position), so a batch
loaded twice stores nothing new. The view takes, per column, the value of the newest version
that carried it (a TOASTed value an update left unchanged is not carried, and keeps the stored
one), and hides keys whose newest version is a delete. NULLs are values here: a column set to
NULL shows NULL (values are wrapped in a tuple so that the aggregate does not skip them).

Shapes follow the source: a column added in PostgreSQL is added here when its first change
arrives (older versions read NULL); a column whose type changed is refused with the table and
column named.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from data_pipeline.adapters.clickhouse_warehouse import (
    ClickHouseWarehouse,
    refuse_if,
    sql_string,
)
from data_pipeline.domain.cdc import Unsupported, convert, text_snapshot_supported
from data_pipeline.errors import InvalidPayload

_META = (
    "_lsn UInt64, _seq UInt32, _is_deleted UInt8, _unchanged Array(String), "
    "_commit_time Nullable(DateTime64(6, 'UTC')), _loaded_at DateTime64(3, 'UTC') DEFAULT now64(3)"
)
_META_COLUMNS = ("_lsn", "_seq", "_is_deleted", "_unchanged", "_commit_time")


def _quote(name: str) -> str:
    """An identifier from the source, quoted for ClickHouse (names are data here)."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _stored_type(clickhouse: str, is_key: bool) -> str:
    """Non-key columns keep NULLs; arrays cannot be Nullable in ClickHouse (NULL reads [])."""
    if is_key or clickhouse.startswith("Array("):
        return clickhouse
    if clickhouse.startswith("LowCardinality("):
        return f"LowCardinality(Nullable({clickhouse[len('LowCardinality(') : -1]}))"
    return f"Nullable({clickhouse})"


@dataclass
class CdcApplied:
    counts: dict[tuple[str, str], int] = field(default_factory=dict)  # (table, op) -> changes
    newest_commit: datetime | None = None  # of the changes applied: the lag is measured to it


class CdcSink:
    def __init__(self, warehouse: ClickHouseWarehouse, database: str) -> None:
        self._warehouse = warehouse
        self.database = database
        self._shapes: dict[str, dict[str, str]] = {}  # table -> column -> stored type
        self._lock = threading.Lock()
        self._ready = False

    def apply(self, message: dict[str, Any]) -> CdcApplied:
        """Load one batch: changes applied per table and operation, and the newest commit."""
        applied = CdcApplied()
        tables = message.get("tables")
        if not isinstance(tables, list):
            raise InvalidPayload("cdc batch without tables")
        for group in tables:
            table, columns, rows = _group(group)
            with self._lock:
                self._ensure(table, columns)
            self._load(table, columns, rows, applied)
        return applied

    def load_text(self, table: str, columns: list[tuple[str, str, bool]], text: bytes) -> None:
        """Rows of a table's initial snapshot in PostgreSQL's `COPY … TO STDOUT` text, parsed
        and converted by ClickHouse itself (no Python per row), at version (0, 0)."""
        with self._lock:
            self._ensure(table, columns)
        conversions = []
        for index, (name, kind, _) in enumerate(columns):
            if not text_snapshot_supported(kind):
                raise Unsupported(f"{table}.{name}: {kind} has no text snapshot conversion")
            conversions.append(text_conversion(f"c{index}", kind, where=f"{table}.{name}"))
        structure = ", ".join(f"c{index} Nullable(String)" for index in range(len(columns)))
        names = [*(name for name, _, _ in columns), *_META_COLUMNS]
        self._warehouse.insert_text(
            f"{_quote(self.database)}.{_quote(table + '__versions')} "
            f"({', '.join(map(_quote, names))})",
            structure,
            ", ".join([*conversions, "0", "0", "0", "[]", "NULL"]),
            text,
        )

    def _ensure(self, table: str, columns: list[tuple[str, str, bool]]) -> None:
        db = self.database
        if not self._ready:
            self._warehouse.execute(f"CREATE DATABASE IF NOT EXISTS {_quote(db)}")
            self._ready = True
        wanted = {name: _stored_type(kind, key) for name, kind, key in columns}
        known = self._shapes.get(table)
        if known is None:
            known = self._existing(table)
        if known is None:
            keys = [name for name, _, key in columns if key]
            body = ", ".join(f"{_quote(n)} {t}" for n, t in wanted.items())
            self._warehouse.execute(
                f"CREATE TABLE IF NOT EXISTS {_quote(db)}.{_quote(table + '__versions')} "
                f"({body}, {_META}) ENGINE = ReplacingMergeTree "
                f"ORDER BY ({', '.join(map(_quote, keys))}, _lsn, _seq) "
                "SETTINGS allow_nullable_key = 1"
            )
            known = self._existing(table) or {}
            self._view(table, [name for name, _, _ in columns], [n for n, _, k in columns if k])
        changed = False
        for name, stored in wanted.items():
            if name not in known:
                self._warehouse.execute(
                    f"ALTER TABLE {_quote(db)}.{_quote(table + '__versions')} "
                    f"ADD COLUMN IF NOT EXISTS {_quote(name)} {stored}"
                )
                changed = True
            elif _base(known[name]) != _base(stored):
                raise Unsupported(
                    f"{table}.{name}: type changed from {known[name]} to {stored}; "
                    "ClickHouse cannot follow (re-create the table's capture)"
                )
        if changed:
            known = self._existing(table) or {}
            view_columns = [n for n in known if not n.startswith("_")]
            self._view(table, view_columns, [n for n, _, k in columns if k])
        self._shapes[table] = known

    def _existing(self, table: str) -> dict[str, str] | None:
        rows = self._warehouse.query(
            "SELECT name, type FROM system.columns WHERE database = {db:String} "
            "AND table = {t:String} ORDER BY position",
            {"db": self.database, "t": table + "__versions"},
        ).rows
        return {name: kind for name, kind in rows} or None

    def _view(self, table: str, columns: list[str], keys: list[str]) -> None:
        version = "(v._lsn, v._seq)"
        select = []
        for name in columns:
            quoted = _quote(name)
            if name in keys:
                select.append(f"v.{quoted} AS {quoted}")
            else:
                select.append(
                    f"tupleElement(argMaxIf(tuple(v.{quoted}), {version}, "
                    f"NOT has(v._unchanged, {sql_string(name)})), 1) AS {quoted}"
                )
        db = _quote(self.database)
        self._warehouse.execute(  # every name is quoted above
            f"CREATE OR REPLACE VIEW {db}.{_quote(table)} AS SELECT {', '.join(select)} "  # noqa: S608
            f"FROM {db}.{_quote(table + '__versions')} AS v "
            f"GROUP BY {', '.join(f'v.{_quote(k)}' for k in keys)} "
            f"HAVING argMax(v._is_deleted, {version}) = 0"
        )

    def _load(
        self,
        table: str,
        columns: list[tuple[str, str, bool]],
        rows: list[list[Any]],
        applied: CdcApplied,
    ) -> None:
        names = [name for name, _, _ in columns]
        keys = [name for name, _, key in columns if key]
        out = []
        for row in rows:
            lsn, seq, op, commit_time, values, unchanged = _row(row, len(names))
            applied.counts[(table, op)] = applied.counts.get((table, op), 0) + 1
            if commit_time is not None and (
                applied.newest_commit is None or commit_time > applied.newest_commit
            ):
                applied.newest_commit = commit_time
            if op == "t":
                self._truncate(table, keys, names, lsn, seq, commit_time)
                continue
            converted = [
                convert(value, kind, where=f"{table}.{name}")
                for value, (name, kind, _) in zip(values, columns, strict=True)
            ]
            out.append([*converted, lsn, seq, int(op == "d"), unchanged, commit_time])
        if out:
            self._warehouse.insert_into(
                self.database, table + "__versions", [*names, *_META_COLUMNS], out
            )

    def _truncate(
        self,
        table: str,
        keys: list[str],
        names: list[str],
        lsn: int,
        seq: int,
        commit_time: datetime | None,
    ) -> None:
        """A tombstone for every key the table shows: TRUNCATE removes them all."""
        db = _quote(self.database)
        others = [n for n in names if n not in keys]
        unchanged = "[" + ", ".join(map(sql_string, others)) + "]"
        at = "NULL"
        if commit_time is not None:
            moment = sql_string(commit_time.strftime("%Y-%m-%d %H:%M:%S.%f"))
            at = f"toDateTime64({moment}, 6, 'UTC')"
        self._warehouse.execute(  # every name is quoted, every value a literal
            f"INSERT INTO {db}.{_quote(table + '__versions')} "  # noqa: S608
            f"({', '.join(map(_quote, keys))}, _lsn, _seq, _is_deleted, _unchanged, _commit_time) "
            f"SELECT {', '.join(map(_quote, keys))}, {int(lsn)}, {int(seq)}, 1, {unchanged}, {at} "
            f"FROM {db}.{_quote(table)}"
        )


def text_conversion(ref: str, clickhouse: str, *, where: str) -> str:
    """ClickHouse SQL turning PostgreSQL's text output of one value (the Nullable(String)
    column `ref`) into what `domain.cdc.convert` makes of it, refusing what it refuses: the
    same values stored whichever path a row takes. Only for types
    `domain.cdc.text_snapshot_supported` accepts."""
    if clickhouse.startswith(("Int", "UInt", "Float")):  # Float: NaN, ±Infinity parse as is
        # Not CAST(…, 'Nullable(T)'): that turns text it cannot parse into NULL, silently.
        return f"if({ref} IS NULL, NULL, CAST({ref}, '{clickhouse}'))"
    if clickhouse == "Bool":
        check = "^(t|f|true|false)$"
        return _checked(ref, check, where, "is not a boolean", f"{ref} IN ('t', 'true')")
    if clickhouse.startswith("Decimal("):
        precision, scale = (int(p) for p in clickhouse[len("Decimal(") : -1].split(","))
        whole = "0" if precision == scale else f"[0-9]{{1,{precision - scale}}}"
        check = f"^-?{whole}(\\.[0-9]{{0,{scale}}}0*)?$"  # trailing zeros: exact, not rounded
        reason = f"a value does not fit {clickhouse} (would need rounding)"
        return _checked(ref, check, where, reason, f"CAST({ref}, '{clickhouse}')")
    if clickhouse.startswith("DateTime64"):
        zone = clickhouse.endswith("'UTC')")
        # Years 1700-2254, as domain.cdc.TIMESTAMP_YEARS (the row path's exact range).
        moment = (
            "^(1[7-9][0-9]{2}|2[01][0-9]{2}|22[0-4][0-9]|225[0-4])"
            "-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,6})?"
        )
        check = moment + ("\\+00$" if zone else "$")
        value = f"substring({ref}, 1, length({ref}) - 3)" if zone else ref
        conversion = f"toDateTime64({value}, 6{', ' + sql_string('UTC') if zone else ''})"
        reason = "a timestamp is outside what ClickHouse stores"
        return _checked(ref, check, where, reason, conversion)
    if clickhouse == "Date32":
        check = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
        reason = "a date is outside what ClickHouse stores"
        return _checked(ref, check, where, reason, f"toDate32({ref})")
    if clickhouse == "UUID":
        return f"if({ref} IS NULL, NULL, toUUID({ref}))"
    return ref  # String, LowCardinality(String): the text itself


def _checked(ref: str, pattern: str, where: str, reason: str, conversion: str) -> str:
    """`conversion` of `ref` when it matches `pattern` (or is NULL); else the insert fails with
    the column and the reason (the batch is dead-lettered with them, nothing is rounded)."""
    refused = refuse_if(
        f"{ref} IS NOT NULL AND NOT match({ref}, {sql_string(pattern)})", f"{where}: {reason}"
    )
    return f"if({refused} = 0, if({ref} IS NULL, NULL, {conversion}), NULL)"


def _base(kind: str) -> str:
    return (
        kind.removeprefix("Nullable(").removesuffix(")") if kind.startswith("Nullable(") else kind
    )


def _group(group: Any) -> tuple[str, list[tuple[str, str, bool]], list[list[Any]]]:
    if not isinstance(group, dict):
        raise InvalidPayload("cdc batch table entry must be an object")
    table, columns, rows = group.get("table"), group.get("columns"), group.get("rows")
    if not isinstance(table, str) or not table or "`" in table or not isinstance(rows, list):
        raise InvalidPayload("cdc batch table entry needs a table name and rows")
    if not isinstance(columns, list) or not columns:
        raise InvalidPayload(f"cdc batch for {table} has no columns")
    parsed = []
    for column in columns:
        if (
            not isinstance(column, list)
            or len(column) != 3
            or not isinstance(column[0], str)
            or not isinstance(column[1], str)
        ):
            raise InvalidPayload(f"cdc batch for {table}: malformed column {str(column)[:60]}")
        parsed.append((column[0], column[1], bool(column[2])))
    if not any(key for _, _, key in parsed):
        raise InvalidPayload(f"cdc batch for {table} names no key column")
    return table, parsed, rows


def _row(row: Any, width: int) -> tuple[int, int, str, datetime | None, list[Any], list[str]]:
    if not isinstance(row, list) or len(row) != 6:
        raise InvalidPayload("cdc change must be [lsn, seq, op, commit_time, values, unchanged]")
    lsn, seq, op, commit_time, values, unchanged = row
    if not isinstance(lsn, int) or not isinstance(seq, int) or op not in ("u", "d", "t"):
        raise InvalidPayload("cdc change has a malformed version or operation")
    if op != "t" and (not isinstance(values, list) or len(values) != width):
        raise InvalidPayload("cdc change values do not match the table's columns")
    if not isinstance(unchanged, list) or not all(isinstance(n, str) for n in unchanged):
        raise InvalidPayload("cdc change has a malformed unchanged list")
    when = datetime.fromisoformat(commit_time) if isinstance(commit_time, str) else None
    return lsn, seq, op, when, values, unchanged
