import contextlib
import json

import pytest
from data_pipeline.domain.envelope import body_sha256, parse_envelope
from data_pipeline.errors import InvalidPayload
from hypothesis import given
from hypothesis import strategies as st

VALID = {
    "event": "order.created",
    "merchant": 1305146709,
    "created_at": "Sun Jun 26 2022 12:21:48 GMT+0300",
    "data": {"id": 1},
}


def encode(document):
    return json.dumps(document).encode()


def test_a_valid_envelope_keeps_its_body_hash():
    raw = encode(VALID)
    envelope = parse_envelope(raw)
    assert (envelope.event, envelope.merchant_id) == ("order.created", 1305146709)
    assert envelope.body_sha256 == body_sha256(raw)


def test_merchant_may_arrive_as_a_digit_string():
    assert parse_envelope(encode({**VALID, "merchant": "42"})).merchant_id == 42


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1,2]", "JSON object"),
        (b"{" * 100_000, "not JSON|nested"),
        (b'{"event": 1' + b"0" * 5000 + b"}", "not valid JSON|not JSON"),
        (encode({k: v for k, v in VALID.items() if k != "merchant"}), "missing merchant"),
        (encode({k: v for k, v in VALID.items() if k != "data"}), "missing data"),
        (encode({**VALID, "merchant": {"id": 1}}), "merchant"),
        (encode({**VALID, "merchant": -5}), "merchant"),
        (encode({**VALID, "merchant": 2**64}), "merchant"),
        (encode({**VALID, "event": "DROP TABLE"}), "event"),
        (encode({**VALID, "data": [1]}), "data"),
        (encode({**VALID, "created_at": "not a date"}), "created_at"),
    ],
)
def test_malformed_envelopes_are_rejected_with_the_reason(raw, reason):
    with pytest.raises(InvalidPayload, match=reason):
        parse_envelope(raw)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_anything_but_invalid_payload(raw):
    with contextlib.suppress(InvalidPayload):
        parse_envelope(raw)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)


@given(
    st.dictionaries(st.sampled_from(["event", "merchant", "data", "created_at", "x"]), json_values)
)
def test_arbitrary_json_objects_either_parse_fully_or_are_rejected(document):
    try:
        envelope = parse_envelope(encode(document))
    except InvalidPayload:
        return
    assert isinstance(envelope.data, dict) and envelope.merchant_id > 0
