import itertools
from datetime import date, timedelta

import pytest
from data_pipeline.domain.sync import (
    Cursor,
    JobStatus,
    SyncJob,
    SyncWindow,
    advance,
    computed_progress,
    months_back,
    slice_months_for,
)
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2026, 11, 22), 12, date(2025, 11, 22)),
        (date(2026, 11, 22), 24, date(2024, 11, 22)),
        (date(2026, 3, 31), 1, date(2026, 2, 28)),
        (date(2024, 3, 31), 1, date(2024, 2, 29)),
        (date(2026, 1, 15), 12, date(2025, 1, 15)),
    ],
)
def test_calendar_months_back(day, months, expected):
    assert months_back(day, months) == expected


def test_the_window_is_inclusive_and_queried_one_day_wider():
    window = SyncWindow.from_depth("12m", date(2026, 11, 22))
    assert window.contains(date(2025, 11, 22)) and window.contains(date(2026, 11, 22))
    assert not window.contains(date(2025, 11, 21)) and not window.contains(date(2026, 11, 23))
    assert window.query_range() == (date(2025, 11, 21), date(2026, 11, 23))


def job(**changes):
    base = SyncJob(
        job_id="j", merchant_id=1, depth="12m", window_start="2025-11-22", window_end="2026-11-22"
    )
    for key, value in changes.items():
        setattr(base, key, value)
    return base


def test_progress_weights_resources_and_reaches_100_only_when_complete():
    running = job(status=JobStatus.RUNNING)
    running.cursor.resource = "orders"
    running.totals = {"products": 10, "customers": 5, "orders": 100}
    running.scanned = {"products": 10, "customers": 5, "orders": 100}
    assert computed_progress(running) == 99  # everything scanned, not yet completed
    running.status = JobStatus.COMPLETED
    assert computed_progress(running) == 100


def test_progress_never_goes_backwards_when_totals_grow():
    running = job(status=JobStatus.RUNNING, progress=60)
    running.cursor.resource = "orders"
    running.totals = {"products": 10, "customers": 5, "orders": 1000}  # new orders appeared
    running.scanned = {"products": 10, "customers": 5, "orders": 300}
    assert computed_progress(running) == 60


def test_jobs_round_trip_through_json():
    original = job(status=JobStatus.RUNNING, seq=7, requests={"orders.detail": 3})
    original.cursor.pending = [1, 2]
    assert SyncJob.from_json(original.to_json()) == original


def test_month_slices_partition_the_window_newest_first():
    window = SyncWindow(date(2024, 11, 22), date(2026, 11, 22))
    for months in (1, 2, 5, 25):
        parts = window.slices(months)
        assert parts[0].end == window.end and parts[-1].start == window.start
        for newer, older in itertools.pairwise(parts):
            assert older.end == newer.start - timedelta(days=1)  # contiguous, no overlap
        days = sum((p.end - p.start).days + 1 for p in parts)
        assert days == (window.end - window.start).days + 1
    monthly = window.slices(1)
    assert len(monthly) == 25 == window.calendar_months
    assert monthly[0] == SyncWindow(date(2026, 11, 1), date(2026, 11, 22))
    assert monthly[1] == SyncWindow(date(2026, 10, 1), date(2026, 10, 31))
    assert monthly[-1] == SyncWindow(date(2024, 11, 22), date(2024, 11, 30))


@pytest.mark.parametrize(
    ("orders", "months"), [(0, 13), (100, 13), (1300, 6), (7800, 1), (100_000, 1)]
)
def test_slices_hold_about_ten_pages_of_orders(orders, months):
    window = SyncWindow(date(2025, 11, 22), date(2026, 11, 22))
    assert slice_months_for(orders, window) == months


def test_the_cursor_walks_pages_slices_and_resources_then_completes():
    running = job(status=JobStatus.RUNNING, slice_months=6)
    assert running.cursor.label() == "products:p1"
    running.cursor.listed([1, 2], {"page": "2"})
    assert (running.cursor.page, running.cursor.params, running.cursor.listing_done) == (
        2,
        {"page": "2"},
        False,
    )
    advance(running)
    assert running.cursor.resource == "products"  # pages remain
    running.cursor.listed([3], None)
    advance(running)
    assert running.cursor.resource == "products" and running.cursor.needs_check
    running.cursor.checked(None)  # no totals (cursor pagination): cannot tell, so once more
    advance(running)
    assert running.cursor.label() == "products:vp1"
    running.cursor.listed([1, 2, 3], None)
    running.cursor.checked(None)  # the re-listing is final
    advance(running)
    assert running.cursor == Cursor(resource="customers")
    running.cursor.slice_total = 0
    running.cursor.listed([], None)
    running.cursor.checked(0)
    advance(running)
    assert running.cursor.label() == "orders:s0p1"
    for index in range(len(running.order_slices())):
        assert running.cursor.slice == index
        running.cursor.slice_total = 1
        running.cursor.pending = [7]
        running.cursor.listed([7], None)
        advance(running)
        assert running.cursor.slice == index  # details still due
        running.cursor.pending = []
        advance(running)
        assert running.cursor.slice == index and running.cursor.needs_check  # total re-probed
        running.cursor.checked(1)  # unchanged: nothing can have been skipped
        advance(running)
    assert running.status is JobStatus.COMPLETED


def test_a_slice_whose_total_changed_or_skipped_an_empty_page_is_listed_once_more():
    running = job(status=JobStatus.RUNNING)
    running.cursor = Cursor(resource="orders", slice_total=130, page=4, listing_done=True)
    running.cursor.slice_ids = [1, 2, 3]
    running.cursor.checked(129)  # an order was deleted while the slice was paged
    cursor = running.cursor
    assert (cursor.verifying, cursor.listing_done, cursor.page, cursor.params) == (
        True,
        False,
        1,
        {},
    )
    assert cursor.label() == "orders:s0vp1" and cursor.slice_ids == [1, 2, 3]
    cursor.listed([9], None)
    assert cursor.needs_check
    cursor.checked(128)  # the re-listing is the last word, whatever the total says now
    assert cursor.verified and not cursor.needs_check
    advance(running)
    assert running.cursor.slice == 1 and not running.cursor.verifying

    passed_over = Cursor(resource="orders", slice_total=50, listing_done=True, passed_over=True)
    passed_over.checked(50)  # the total is the same, but an empty page was believed
    assert passed_over.verifying


def test_a_listing_without_totals_is_always_listed_once_more():
    """Cursor pagination ({count, current, next}) says no total: nothing shows whether rows
    shifted between pages, so the listing is read again once, and that pass is final."""
    cursor = Cursor(resource="customers", slice_total=None, listing_done=True)
    cursor.checked(None)
    assert cursor.verifying and not cursor.listing_done and cursor.page == 1
    cursor.listed([5], None)
    cursor.checked(None)
    assert cursor.verified and not cursor.needs_check


@given(
    scanned=st.lists(st.integers(0, 500), min_size=1, max_size=40),
    totals=st.lists(st.integers(0, 500), min_size=1, max_size=40),
)
def test_progress_never_decreases_whatever_the_counts_do(scanned, totals):
    running = job(status=JobStatus.RUNNING)
    running.cursor.resource = "orders"
    seen = []
    for done, total in zip(scanned, totals, strict=False):
        running.scanned["orders"] = done
        running.totals["orders"] = total
        running.progress = computed_progress(running)
        seen.append(running.progress)
    assert seen == sorted(seen) and all(0 <= p <= 99 for p in seen)


def test_the_status_document_has_the_documented_shape():
    document = job(status=JobStatus.RUNNING, merchant_id=1305146709).status_document()
    assert document["merchantId"] == "1305146709"
    assert {
        "jobId",
        "merchantId",
        "status",
        "progress",
        "counts",
        "startedAt",
        "updatedAt",
        "error",
    } <= set(document)
    assert document["counts"] == {"products": 0, "customers": 0, "orders": 0}
