"""Retrieval documents and ranking: what is embedded, what never is, and how results rank."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from data_pipeline.domain.model import CustomerVersion, OrderVersion, ProductVersion
from data_pipeline.domain.rag import (
    FilterError,
    Match,
    hybrid_rank,
    normalize,
    order_document,
    product_document,
    scrub,
    validate_filter,
)
from data_pipeline.errors import InvalidPayload
from data_pipeline.service_layer.rag import EmbedRequest, announcement_for

PRODUCT = {
    "product_id": 7,
    "name": "قهوة عربية 250 جرام",
    "description": "بن يمني فاخر. للتواصل: owner@shop.sa أو 0551234567",
    "sku": "AC-250",
    "price": Decimal("45.00"),
    "sale_price": Decimal("0"),
    "currency": "SAR",
    "status": "sale",
    "category": "القهوة",
    "updated_at": datetime(2026, 11, 1, tzinfo=UTC),
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("call 0551234567 now", "call [phone] now"),
        ("واتساب +966 55 123 4567", "واتساب [phone]"),
        ("mail a.b+c@shop.example.sa", "mail [email]"),
        ("00966551234567", "[phone]"),
        ("SKU AC-250, 250 جرام, 1kg", "SKU AC-250, 250 جرام, 1kg"),  # not phones
        ("order 40001234", "order 40001234"),
    ],
)
def test_scrub_masks_contact_details_only(text, expected):
    assert scrub(text) == expected


def test_normalize_folds_arabic_variants_case_digits_and_diacritics():
    assert normalize("قَهْوَة  عربيّة ٢٥٠") == normalize("قهوه عربية 250")
    assert normalize("أحمر") == normalize("احمر")
    assert normalize("Arabic COFFEE") == "arabic coffee"


def test_a_product_document_carries_what_the_assistant_needs_and_no_contact_details():
    document = product_document(PRODUCT)
    assert document.doc_id == "product:7"
    assert "قهوة عربية 250 جرام" in document.text and "45.00 SAR" in document.text
    assert "owner@shop.sa" not in document.text and "0551234567" not in document.text
    assert document.metadata["sku"] == "AC-250" and document.metadata["price"] == 45.0
    assert "sale price" not in document.text  # a zero sale price is no sale


def test_the_content_hash_changes_with_the_content_only():
    same = product_document({**PRODUCT})
    assert same.content_hash == product_document(PRODUCT).content_hash
    assert product_document({**PRODUCT, "price": Decimal("49.5")}).content_hash != (
        same.content_hash
    )


def test_an_order_summary_has_items_status_city_totals_and_never_the_customer():
    row = {
        "order_id": 9,
        "reference_id": 4001,
        "status": "completed",
        "status_name": "تم التنفيذ",
        "total": Decimal("120.75"),
        "currency": "SAR",
        "city": "جدة",
        "payment_method": "mada",
        "created_at": datetime(2026, 11, 2, 10, tzinfo=UTC),
        "customer_id": 555,
        "customer_name": "محمد",
    }
    items = [
        {"product_id": 7, "sku": "AC-250", "name": "قهوة عربية", "quantity": Decimal("2")},
        {"product_id": 8, "sku": "", "name": "هيل", "quantity": Decimal("1")},
    ]
    document = order_document(row, items)
    assert document.doc_id == "order:9"
    assert "2 × قهوة عربية [AC-250]" in document.text and "جدة" in document.text
    assert "120.75 SAR" in document.text and "تم التنفيذ" in document.text
    assert "محمد" not in document.text and "555" not in document.text
    assert document.metadata["item_count"] == 3
    assert document.metadata["product_ids"] == ["7", "8"]
    assert not {"customer_id", "customer_name"} & set(document.metadata)


def test_an_exact_name_outranks_a_closer_vector_of_a_near_identical_variant():
    exact = {"name_key": normalize("قهوة عربية 250 جرام"), "text": "قهوة عربية 250 جرام"}
    variant = {"name_key": normalize("قهوة عربية شقراء 500 جرام"), "text": "قهوة عربية شقراء"}
    ranked = hybrid_rank(
        "قهوه عربيه 250 جرام",
        [Match("product:2", 0.93, variant), Match("product:1", 0.90, exact)],
        top_k=2,
    )
    assert [m.doc_id for m in ranked] == ["product:1", "product:2"]


def test_hybrid_rank_keeps_one_entry_per_document_best_score_first():
    meta = {"name_key": "x", "text": "x"}
    ranked = hybrid_rank(
        "y", [Match("a", 0.5, meta), Match("a", 0.7, meta), Match("b", 0.6, meta)], 5
    )
    assert [m.doc_id for m in ranked] == ["a", "b"]


@pytest.mark.parametrize(
    "spec",
    [
        "entity",
        {"customer": "x"},
        {"price": {"$regex": "1"}},
        {"price": "cheap"},
        {"status": {"$gt": "a"}},
        {"status": {"$in": []}},
        {"status": {"$in": "sale"}},
        {"price": {}},
        {"price": True},
    ],
)
def test_filters_outside_the_supported_subset_are_refused(spec):
    with pytest.raises(FilterError):
        validate_filter(spec)


def test_filters_normalise_to_operator_form():
    assert validate_filter({"entity": "product", "price": {"$lte": 100, "$gt": 1}}) == {
        "entity": {"$eq": "product"},
        "price": {"$lte": 100, "$gt": 1},
    }
    assert validate_filter(None) == {}


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"nope",
        b"[1]",
        b'{"merchantId": 0}',
        b'{"merchantId": true}',
        b'{"merchantId": 1, "products": [1.5]}',
        b'{"merchantId": 1, "orders": {"1": 1}}',
        b'{"merchantId": 18446744073709551616}',
        b'{"merchantId": 1, "products": [1], "versions": [1]}',
        b'{"merchantId": 1, "products": [1], "versions": {"product:1": -1}}',
        b'{"merchantId": 1, "products": [1], "versions": {"product:1": true}}',
        b'{"merchantId": 1, "products": [1], "versions": {"product:1": "7"}}',
        b'{"merchantId": 1, "products": [1], "versions": {"order:1": 7}}',
    ],
)
def test_embed_messages_are_validated(raw):
    with pytest.raises(InvalidPayload):
        EmbedRequest.parse(raw)


def test_embed_messages_round_trip_and_drop_repeated_ids():
    request = EmbedRequest.parse(b'{"merchantId": 5, "products": [3, 3, 1], "orders": [2]}')
    assert request == EmbedRequest(5, (3, 1), (2,))
    assert EmbedRequest.parse(request.to_json()) == request


def test_announcements_name_only_products_and_orders_of_the_merchant():
    at = datetime(2026, 11, 1, tzinfo=UTC)
    entities = [
        ProductVersion(merchant_id=5, product_id=1, version=1, event_time=at),
        OrderVersion(merchant_id=5, order_id=2, version=1, event_time=at),
        CustomerVersion(merchant_id=5, customer_id=3, version=1, event_time=at),
    ]
    assert announcement_for(5, entities) == EmbedRequest(5, (1,), (2,))
    assert announcement_for(5, entities[2:]) is None


def test_announcements_carry_the_newest_version_loaded_of_each_document():
    at = datetime(2026, 11, 1, tzinfo=UTC)
    entities = [
        ProductVersion(merchant_id=5, product_id=1, version=9, event_time=at),
        ProductVersion(merchant_id=5, product_id=1, version=4, event_time=at),
        OrderVersion(merchant_id=5, order_id=2, version=2**63, event_time=at),
    ]
    request = announcement_for(5, entities)
    assert request.versions == {"product:1": 9, "order:2": 2**63}
    assert EmbedRequest.parse(request.to_json()).versions == request.versions
    # A message queued by a release without versions still parses (and checks nothing).
    assert EmbedRequest.parse(b'{"merchantId": 5, "products": [1]}').versions == {}


def test_an_exact_match_is_first_even_with_a_poor_vector_score():
    exact = {"name_key": normalize("Arabic Coffee 250g"), "text": "Arabic Coffee 250g"}
    lookalike = {"name_key": normalize("Arabic Coffee 500g"), "text": "Arabic Coffee 500g"}
    ranked = hybrid_rank(
        "arabic coffee 250G",
        [Match("product:2", 0.99, lookalike), Match("product:1", 0.05, exact)],
        top_k=2,
    )
    assert [m.doc_id for m in ranked] == ["product:1", "product:2"]


def test_bookkeeping_fields_do_not_change_the_content_hash():
    later = {**PRODUCT, "updated_at": datetime(2027, 1, 1, tzinfo=UTC)}
    assert product_document(later).content_hash == product_document(PRODUCT).content_hash
