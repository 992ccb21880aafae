"""Normalising Salla's answers: both pagination shapes, the `links` variants, rate headers,
and both token-refresh answer shapes (reference §3.1–§4)."""

import httpx
import pytest
from data_pipeline.adapters.salla_api import RateInfo, SallaUnavailable, parse_page, rate_info
from data_pipeline.adapters.salla_oauth import (
    DEFAULT_LIFETIME_SECONDS,
    RefreshAnswerUnreadable,
    parse_answer,
    parse_issued,
)

ROWS = [{"id": 1}, {"id": 2}]


@pytest.mark.parametrize(
    ("links", "expected_next"),
    [
        ({}, {"page": "2"}),
        ([], {"page": "2"}),
        (
            {"next": "https://api.salla.dev/admin/v2/orders?page=2&per_page=60"},
            {"page": "2", "per_page": "60"},
        ),
        ({"next": "https://x/orders?page=9"}, {"page": "2"}),  # never skip pages on a bad link
        ({"previous": "https://x?page=1", "prev": None}, {"page": "2"}),
    ],
)
def test_page_pagination_with_every_links_shape(links, expected_next):
    document = {
        "data": ROWS,
        "pagination": {
            "count": 2,
            "total": 120,
            "perPage": 60,
            "currentPage": 1,
            "totalPages": 2,
            "links": links,
        },
    }
    page = parse_page(document, RateInfo())
    assert page.next_params == expected_next and page.total == 120 and page.claims_more


def test_the_last_page_has_no_next():
    document = {"data": ROWS, "pagination": {"currentPage": 2, "totalPages": 2, "links": []}}
    page = parse_page(document, RateInfo())
    assert page.next_params is None and not page.claims_more


def test_cursor_pagination_follows_the_next_url():
    document = {
        "data": ROWS,
        "pagination": {
            "count": 2,
            "current": 1,
            "next": "https://x/customers?cursor=abc&per_page=60",
        },
    }
    page = parse_page(document, RateInfo())
    assert page.next_params == {"cursor": "abc", "per_page": "60"} and page.total is None
    last = parse_page(
        {"data": ROWS, "pagination": {"count": 2, "current": 3, "next": None}}, RateInfo()
    )
    assert last.next_params is None


def test_an_empty_page_ends_the_listing_but_says_whether_more_were_claimed():
    document = {"data": [], "pagination": {"currentPage": 3, "totalPages": 8, "links": {}}}
    page = parse_page(document, RateInfo())
    assert page.next_params is None and page.claims_more
    no_pagination = parse_page({"data": []}, RateInfo())
    assert no_pagination.next_params is None and not no_pagination.claims_more


@pytest.mark.parametrize("document", [{}, {"data": {"id": 1}}, {"data": None}])
def test_a_list_answer_without_a_data_array_is_a_transient_failure(document):
    with pytest.raises(SallaUnavailable):
        parse_page(document, RateInfo())


def test_rate_headers_are_read_and_garbage_ignored():
    info = rate_info(
        httpx.Headers(
            {
                "X-RateLimit-Limit": "720",
                "X-RateLimit-Remaining": "12",
                "X-RateLimit-Reset": "1800000000",
                "Retry-After": "7",
            }
        )
    )
    assert info == RateInfo(720, 12, 1_800_000_000.0, 7.0)
    junk = rate_info(httpx.Headers({"X-RateLimit-Limit": "lots", "X-RateLimit-Remaining": "-1"}))
    assert junk == RateInfo()


def test_a_429_waits_for_retry_after_then_the_reset_then_a_minute():
    now = 1_000.0
    assert RateInfo(retry_after=7).wait_seconds(now) == 7
    assert RateInfo(reset_epoch=now + 30).wait_seconds(now) == 30
    assert RateInfo(reset_epoch=now - 5).wait_seconds(now) == 60
    assert RateInfo().wait_seconds(now) == 60


def test_refresh_answers_with_expires_in_or_expires_are_both_understood():
    now = 1_000_000_000.0
    with_duration = parse_issued(
        {"access_token": "a", "refresh_token": "r", "expires_in": 3600}, now=now
    )
    assert with_duration.expires_at == now + 3600
    stamp = parse_issued(
        {"access_token": "a", "refresh_token": "r", "expires": 1_900_000_000}, now=now
    )
    assert stamp.expires_at == 1_900_000_000
    wrapped = parse_issued(
        {"data": {"access_token": "secret-at", "refresh_token": "secret-rt"}}, now=now
    )
    assert wrapped.expires_at == now + DEFAULT_LIFETIME_SECONDS
    assert "secret" not in repr(wrapped)  # tracebacks and logs never show tokens


@pytest.mark.parametrize(
    "document", [{}, {"access_token": "a"}, {"access_token": "", "refresh_token": "r"}]
)
def test_a_refresh_answer_without_both_tokens_is_not_accepted(document):
    # Not transient: the answer spent the refresh token, so retrying would revoke the merchant.
    with pytest.raises(RefreshAnswerUnreadable):
        parse_issued(document, now=0)


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1]", b'"x"', b'{"data": 1}'])
def test_a_refresh_answer_that_is_not_an_object_is_unreadable(raw):
    with pytest.raises(RefreshAnswerUnreadable):
        parse_answer(raw, now=0)
