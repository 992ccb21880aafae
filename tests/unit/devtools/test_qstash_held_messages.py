"""The local QStash server holds every pending message in memory: held messages must cost the
cyclic GC as little as possible (a full collection pauses every publish; docs/benchmarks.md)."""

import gc

from data_pipeline.devtools.qstash_server.drafts import parse_draft
from data_pipeline.devtools.qstash_server.model import Message

PAIRS = [
    ("Content-Type", "application/json"),
    ("Upstash-Forward-X-Pipeline-Accepted-At", "1700000000000"),
    ("Upstash-Forward-X-Trace", "a"),
    ("Upstash-Forward-X-Trace", "b"),
    ("Upstash-Flow-Control-Key", "events"),
    ("Upstash-Flow-Control-Value", "parallelism=4"),
]


def _message(draft, message_id="msg_1"):
    return Message(
        message_id=message_id,
        url=draft.destination,
        method=draft.method,
        body=draft.body,
        headers=draft.headers,
        max_retries=draft.retries,
        created_at_ms=1,
        not_before_ms=1,
        flow_control=draft.flow_control,
    )


def test_a_held_message_leaves_only_itself_to_the_cycle_collector():
    draft = parse_draft("https://example.com/hook", b"{}", PAIRS, None)
    message = _message(draft)
    gc.collect()  # tuples of strings, then dicts of only those, are untracked by collections
    assert message.headers == {
        "X-Pipeline-Accepted-At": ("1700000000000",),
        "X-Trace": ("a", "b"),
        "Content-Type": ("application/json",),
    }
    assert not any(gc.is_tracked(values) for values in message.headers.values())
    assert not gc.is_tracked(message.headers)
    other = parse_draft("https://example.com/hook", b"{}", PAIRS, None)
    assert other.flow_control is draft.flow_control  # one instance per settings, shared


def test_messages_read_back_from_the_store_have_the_same_shape():
    draft = parse_draft("https://example.com/hook", b"{}", PAIRS, None)
    message = _message(draft)
    again = Message.from_row(message.metadata_json(), message.body)
    assert again.headers == message.headers
    assert again.flow_control is message.flow_control
    assert again == message
