"""How `import-events` reads its input's lines (entrypoints/cli/importer.py): numbered, a byte
order mark dropped, no line held whole past the limit, a broken stream ended where it breaks."""

import gzip
import io

from data_pipeline.domain.envelope import MAX_WEBHOOK_BYTES
from data_pipeline.entrypoints.cli.importer import CHUNK_BYTES, CHUNK_LINES, _chunks, _Lines

from shared.topics import IMPORT_MAX_BYTES


def read(data, limit=100):
    lines = _Lines(io.BufferedReader(io.BytesIO(data)), limit=limit)
    return list(lines), lines


def test_lines_are_read_as_they_are_with_a_byte_order_mark_dropped():
    got, lines = read(b'\xef\xbb\xbf{"a": 1}\r\n\n{"b": 2}')
    assert got == [b'{"a": 1}\r\n', b"\n", b'{"b": 2}']
    assert lines.count == 3 and lines.unreadable is None


def test_an_overlong_line_is_cut_to_one_byte_over_the_limit_and_the_next_line_is_whole():
    got, lines = read(b"x" * 5000 + b"\n" + b"next\n" + b"y" * 101 + b"\nz", limit=100)
    assert got == [b"x" * 101, b"next\n", b"y" * 101, b"z"]
    assert lines.count == 4


def test_a_line_of_exactly_the_limit_is_kept_whole():
    got, _ = read(b"x" * 100 + b"\n" + b"y" * 100, limit=100)
    assert got == [b"x" * 100 + b"\n", b"y" * 100]


def test_a_file_without_newlines_is_one_line_never_held_whole():
    got, lines = read(b"z" * (3 * 2**20), limit=1000)
    assert got == [b"z" * 1001] and lines.count == 1


def test_a_cut_gzip_stream_ends_the_lines_where_it_breaks():
    whole = gzip.compress(b"".join(b'{"n": %d}\n' % n for n in range(2000)))
    stream = gzip.GzipFile(fileobj=io.BytesIO(whole[: len(whole) // 2]))
    lines = _Lines(stream, limit=100)
    got = list(lines)
    assert 0 < len(got) < 2000 and lines.count == len(got)
    assert lines.unreadable is not None and "cut off" in lines.unreadable


def test_an_empty_input_has_no_lines():
    got, lines = read(b"")
    assert got == [] and lines.count == 0
    got, lines = read(b"\xef\xbb\xbf")
    assert got == [] and lines.count == 0


def test_chunks_sent_to_a_service_stay_under_its_body_limit_whatever_the_lines():
    # The largest request: the budget less a byte, then the line that crosses it (at most
    # 1 MiB + 1 byte, plus its newline). It must fit the local service's limit, Lambda's 6 MB
    # invocation payload with the body base64-encoded, and Vercel's 4.5 MB body.
    largest = CHUNK_BYTES - 1 + MAX_WEBHOOK_BYTES + 2
    assert largest <= IMPORT_MAX_BYTES
    assert largest * 4 / 3 + 64 * 1024 <= 6_291_456  # 64 KiB for the event's other fields
    assert largest <= 4_500_000
    lines = [b"a" * 100_000 + b"\n"] * 400 + [b"b\n"] * (CHUNK_LINES + 10) + [b"c"]
    lines.insert(7, b"z" * (MAX_WEBHOOK_BYTES + 1))  # an overlong line as _Lines passes it on
    chunks = list(_chunks(lines))
    assert all(chunk and sum(map(len, chunk)) <= largest for chunk in chunks)
    assert all(len(chunk) <= CHUNK_LINES for chunk in chunks)
    assert b"".join(b"".join(chunk) for chunk in chunks) == b"".join(
        line if line.endswith(b"\n") else line + b"\n" for line in lines
    )
    assert len(chunks) >= 21  # 41 MB of long lines: 20 requests, and the short lines overflow
