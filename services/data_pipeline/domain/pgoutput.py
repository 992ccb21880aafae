"""PostgreSQL's logical replication protocol (`pgoutput`, protocol version 1), decoded.

Message formats: https://www.postgresql.org/docs/15/protocol-logicalrep-message-formats.html
Each message is one row's `data` of `pg_logical_slot_peek_binary_changes(..., 'proto_version',
'1', 'publication_names', ...)`. Pure: bytes in, dataclasses out; values stay in PostgreSQL's
text output format (the type mapping in `cdc` parses them).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from data_pipeline.errors import InvalidPayload

_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
UNCHANGED = object()  # a TOASTed value the update did not touch: keep the stored one


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type_oid: int
    type_modifier: int
    is_key: bool


@dataclass(frozen=True, slots=True)
class Relation:
    relation_id: int
    schema: str
    name: str
    replica_identity: str  # d(efault), n(othing), f(ull), i(ndex)
    columns: tuple[Column, ...]


@dataclass(frozen=True, slots=True)
class Begin:
    final_lsn: int
    commit_time: datetime
    xid: int


@dataclass(frozen=True, slots=True)
class Commit:
    commit_lsn: int
    end_lsn: int
    commit_time: datetime


# A tuple's values: text, None (SQL NULL) or UNCHANGED.
Values = tuple[object, ...]


@dataclass(frozen=True, slots=True)
class Insert:
    relation_id: int
    new: Values


@dataclass(frozen=True, slots=True)
class Update:
    relation_id: int
    old: Values | None  # the old key ('K') or whole old row ('O'), when Postgres sends it
    new: Values


@dataclass(frozen=True, slots=True)
class Delete:
    relation_id: int
    old: Values


@dataclass(frozen=True, slots=True)
class Truncate:
    relation_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Ignored:
    kind: str  # origin, type, message: nothing to apply


Message = Begin | Commit | Relation | Insert | Update | Delete | Truncate | Ignored


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, size: int) -> bytes:
        if self.at + size > len(self.data):
            raise InvalidPayload("pgoutput message is truncated")
        chunk = self.data[self.at : self.at + size]
        self.at += size
        return chunk

    def int8(self) -> int:
        return self.take(1)[0]

    def int16(self) -> int:
        return int(struct.unpack(">h", self.take(2))[0])

    def int32(self) -> int:
        return int(struct.unpack(">i", self.take(4))[0])

    def uint32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def int64(self) -> int:
        return int(struct.unpack(">q", self.take(8))[0])

    def string(self) -> str:
        end = self.data.find(b"\x00", self.at)
        if end < 0:
            raise InvalidPayload("pgoutput string is not terminated")
        text = self.data[self.at : end].decode("utf-8")
        self.at = end + 1
        return text

    def time(self) -> datetime:
        return _PG_EPOCH + timedelta(microseconds=self.int64())

    def tuple_data(self) -> Values:
        values: list[object] = []
        for _ in range(self.int16()):
            kind = chr(self.int8())
            if kind == "n":
                values.append(None)
            elif kind == "u":
                values.append(UNCHANGED)
            elif kind == "t":
                values.append(self.take(self.int32()).decode("utf-8"))
            else:
                raise InvalidPayload(f"pgoutput tuple value kind {kind!r} is not text")
        return tuple(values)


def decode(data: bytes) -> Message:
    if not data:
        raise InvalidPayload("empty pgoutput message")
    reader = _Reader(data)
    kind = chr(reader.int8())
    if kind == "B":
        return Begin(final_lsn=reader.int64(), commit_time=reader.time(), xid=reader.uint32())
    if kind == "C":
        reader.int8()  # flags, unused
        return Commit(commit_lsn=reader.int64(), end_lsn=reader.int64(), commit_time=reader.time())
    if kind == "R":
        relation_id = reader.uint32()
        schema, name = reader.string(), reader.string()
        identity = chr(reader.int8())
        columns = []
        for _ in range(reader.int16()):
            flags = reader.int8()
            columns.append(Column(reader.string(), reader.uint32(), reader.int32(), flags & 1 == 1))
        return Relation(relation_id, schema, name, identity, tuple(columns))
    if kind == "I":
        relation_id = reader.uint32()
        if chr(reader.int8()) != "N":
            raise InvalidPayload("pgoutput insert without a new tuple")
        return Insert(relation_id, reader.tuple_data())
    if kind == "U":
        relation_id = reader.uint32()
        marker = chr(reader.int8())
        old = None
        if marker in ("K", "O"):
            old = reader.tuple_data()
            marker = chr(reader.int8())
        if marker != "N":
            raise InvalidPayload("pgoutput update without a new tuple")
        return Update(relation_id, old, reader.tuple_data())
    if kind == "D":
        relation_id = reader.uint32()
        if chr(reader.int8()) not in ("K", "O"):
            raise InvalidPayload("pgoutput delete without the old key")
        return Delete(relation_id, reader.tuple_data())
    if kind == "T":
        count = reader.int32()
        reader.int8()  # options (cascade, restart identity)
        return Truncate(tuple(reader.uint32() for _ in range(count)))
    if kind in ("O", "Y", "M"):
        return Ignored({"O": "origin", "Y": "type", "M": "message"}[kind])
    raise InvalidPayload(f"pgoutput message kind {kind!r} is not supported")


def lsn_text(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)
