"""Version keys: event time first, then, inside one second (Salla's resolution), what the
payloads say about which state came later; distinct bodies practically never share a key."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from data_pipeline.devtools.salla_samples import encode, sample_envelope
from data_pipeline.domain.envelope import body_sha256, parse_envelope
from data_pipeline.domain.events import transform
from data_pipeline.domain.versioning import Rank, make_version, order_progress
from hypothesis import given
from hypothesis import strategies as st

seconds = st.integers(min_value=1_500_000_000, max_value=4_000_000_000).map(
    lambda s: datetime.fromtimestamp(s, UTC)
)
digests = st.binary(min_size=1, max_size=64).map(lambda b: hashlib.sha256(b).hexdigest())
ranks = st.sampled_from(list(Rank))
progress = st.integers(min_value=0, max_value=15)


@given(seconds, ranks, ranks, progress, progress, digests, digests)
def test_a_later_second_always_wins(at, rank_a, rank_b, step_a, step_b, hash_a, hash_b):
    earlier = make_version(at, rank_a, hash_a, step_a)
    later = make_version(at + timedelta(seconds=1), rank_b, hash_b, step_b)
    assert later > earlier


@given(seconds, st.sampled_from(list(Rank)), progress, progress, digests, digests)
def test_inside_a_second_the_rank_then_the_progress_decide(at, rank, step_a, step_b, ha, hb):
    if step_a != step_b:
        assert (make_version(at, rank, ha, step_a) < make_version(at, rank, hb, step_b)) == (
            step_a < step_b
        )
    # A deletion beats any update of the same second, however far along the update is.
    assert make_version(at, Rank.DELETED, ha, 0) > make_version(at, Rank.UPDATED, hb, 15)
    assert make_version(at, Rank.UPDATED, ha, 0) > make_version(at, Rank.BACKFILL, hb, 15)


@given(seconds, ranks, progress, digests)
def test_the_same_body_always_gets_the_same_key(at, rank, step, digest):
    assert make_version(at, rank, digest, step) == make_version(at, rank, digest, step)


def test_distinct_same_second_bodies_rarely_share_a_key():
    """20,000 distinct bodies in one second, same rank and progress: the old layout (16 hash
    bits) expects ~2,900 colliding pairs; this one ~150, and at 2 to 5 updates per order and
    second, a collision is a ~1e-6 event per pair."""
    at = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    digests_ = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(20_000)]
    keys = {make_version(at, Rank.UPDATED, d, 3) for d in digests_}
    old_keys = {int(d[:4], 16) for d in digests_}
    assert len(digests_) - len(keys) < (len(digests_) - len(old_keys)) / 8


def test_an_order_shipped_in_the_second_it_was_confirmed_is_the_later_state():
    """Orders carry no updated_at: two status changes in one second used to be ordered by the
    body hash, i.e. at random, and the older status could win for good."""
    created = sample_envelope("order.status.updated")
    states = []
    for slug in ("under_review", "in_progress", "completed", "delivering", "delivered"):
        event = {**created, "data": {**created["data"], "status": {"slug": slug, "name": slug}}}
        envelope = parse_envelope(encode(event))
        (header, *_) = transform(envelope).entities
        states.append((header.version, slug))
    assert [slug for _, slug in sorted(states)] == [
        "under_review",
        "in_progress",
        "completed",
        "delivering",
        "delivered",
    ]
    assert order_progress("cancelled") == order_progress("canceled") > order_progress("delivered")
    assert order_progress("a_custom_status") == order_progress(None) == 0


def test_times_with_milliseconds_keep_them():
    """Our own stamps (token versions) are not whole seconds: nothing is added to them."""
    at = datetime(2026, 11, 30, 12, 0, 0, 250_000, tzinfo=UTC)
    digest = body_sha256(b"x")
    assert make_version(at, Rank.UPDATED, digest, 9) >> 20 == int(at.timestamp() * 1000)
