"""Salla's own published examples (tests/fixtures/salla, sources in its README) to domain
entities, field by field."""

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from data_pipeline.domain.envelope import parse_envelope
from data_pipeline.domain.events import transform
from data_pipeline.domain.model import (
    AbandonedCartVersion,
    CartItem,
    CustomerVersion,
    InvoiceVersion,
    ItemOption,
    OrderItemSet,
    OrderVersion,
    ProductVersion,
    ReviewVersion,
    ShipmentVersion,
)
from data_pipeline.domain.reviews import review_version
from data_pipeline.errors import InvalidPayload

FIXTURES = Path(__file__).parents[2] / "fixtures" / "salla"


def example(name):
    return json.loads((FIXTURES / f"{name}.json").read_text())["envelope"]


def entities(document):
    result = transform(parse_envelope(json.dumps(document, ensure_ascii=False).encode()))
    assert result.modeled
    return result.entities


def riyadh(*args):
    return datetime(*args, tzinfo=UTC)


def test_every_fixture_names_its_source():
    for path in FIXTURES.glob("*.json"):
        document = json.loads(path.read_text())
        assert document["source"] and document["envelope"]["event"], path.name


def test_order_created_keeps_cod_coupon_draft_and_options():
    header, items = entities(example("order.created"))
    assert isinstance(header, OrderVersion) and isinstance(items, OrderItemSet)
    assert (header.order_id, header.reference_id, header.status) == (
        2116149737,
        41027662,
        "under_review",
    )
    assert (header.sub_total, header.shipping_cost, header.tax, header.discount) == (
        Decimal(186),
        Decimal(15),
        Decimal(0),
        Decimal(5),
    )
    assert header.cod_fee == Decimal(0)
    assert header.coupon_code == "new offer"
    assert header.is_draft is False
    # The totals reconcile: sub_total + shipping + tax + cod - discount = total.
    assert (
        header.sub_total + header.shipping_cost + header.tax + header.cod_fee - header.discount
        == header.total
        == Decimal(196)
    )
    [line] = items.items
    assert line.options == (
        ItemOption("SIZE", "BIG", Decimal(120)),
        ItemOption("الاضافات", "بصل", Decimal(0)),
        ItemOption("الاضافات", "فلفل", Decimal(0)),
    )
    assert line.variant_key == "SIZE=BIG|الاضافات=بصل|الاضافات=فلفل"
    assert (line.unit_price, line.quantity, line.line_total) == (
        Decimal(186),
        Decimal(1),
        Decimal(186),
    )


def test_a_cod_order_reconciles_with_its_fee():
    document = example("order.created")
    document["data"]["payment_method"] = "cod"
    document["data"]["amounts"]["cash_on_delivery"] = {"amount": 12, "currency": "SAR"}
    document["data"]["amounts"]["total"] = {"amount": 208, "currency": "SAR"}
    header, _ = entities(document)
    assert header.cod_fee == Decimal(12)
    assert (
        header.sub_total + header.shipping_cost + header.tax + header.cod_fee - (header.discount)
        == header.total
    )


def test_a_minimal_order_created_loads_what_it_carries():
    [header] = entities(example("order.created.minimal"))
    assert (header.order_id, header.reference_id) == (999, 50123)
    assert header.status is header.total is header.created_at is None


def test_product_created_keeps_cost_and_no_sale():
    [product] = entities(example("product.created"))
    assert isinstance(product, ProductVersion)
    assert (product.price, product.cost_price) == (Decimal(100), Decimal(55))
    assert product.sale_price == Decimal(0)  # Salla's "no sale": the contract shows NULL
    assert product.sale_ends_at is None


def test_product_price_updated_reads_cost_and_the_sale_end():
    [product] = entities(example("product.price.updated"))
    assert (product.price, product.cost_price, product.sale_price) == (
        Decimal(110),
        Decimal(60),
        Decimal(80),
    )
    assert product.sale_ends_at == riyadh(2023, 3, 31, 21, 0)  # 2023-04-01 00:00 in Riyadh


def test_customer_created_is_the_sign_up_time_and_updates_never_are():
    document = example("customer.created")
    [created] = entities(document)
    assert isinstance(created, CustomerVersion)
    assert created.created_at == created.event_time == riyadh(2022, 1, 24, 11, 26, 55)
    document["event"] = "customer.updated"
    [updated] = entities(document)
    assert updated.created_at is None


def test_abandoned_cart_keeps_lines_link_and_status():
    [cart] = entities(example("abandoned.cart"))
    assert isinstance(cart, AbandonedCartVersion)
    assert cart.items == (CartItem(401511871, Decimal(2), None, None),)
    assert cart.checkout_url == "https://salla.sa/store/checkout/1097962121"
    assert cart.status is None and cart.recovered_at is None  # shown as active
    assert (cart.total, cart.subtotal, cart.discount, cart.coupon_code) == (
        Decimal(100),
        Decimal(60),
        Decimal(10),
        "WELCOME",
    )


def test_a_purchase_recovers_the_cart_with_its_order():
    [cart] = entities(example("abandoned.cart.purchased"))
    assert (cart.status, cart.recovered_order_id) == ("purchased", 2116150001)
    assert cart.recovered_at == cart.event_time == riyadh(2025, 1, 21, 16, 30)
    abandoned = entities(example("abandoned.cart"))[0]
    assert cart.version > abandoned.version


def test_a_cart_link_that_is_not_a_web_address_is_dropped_not_fatal():
    document = example("abandoned.cart")
    document["data"]["checkout_url"] = "javascript:alert(1)"
    [cart] = entities(document)
    assert cart.checkout_url is None and cart.total == Decimal(100)


def test_invoice_created_keeps_vat_and_lines_and_no_buyer():
    [invoice] = entities(example("invoice.created"))
    assert isinstance(invoice, InvoiceVersion)
    assert (invoice.invoice_id, invoice.order_id, invoice.number) == (1197159170, 1848408264, "1")
    assert (invoice.sub_total, invoice.tax, invoice.tax_percent, invoice.total) == (
        Decimal(588),
        Decimal("88.2"),
        Decimal(15),
        Decimal("676.2"),
    )
    assert invoice.issued_at == riyadh(2025, 11, 6, 7, 10, 40)
    [line] = invoice.lines
    assert (line.product_id, line.quantity, line.tax, line.tax_percent) == (
        802593739,
        Decimal(1),
        Decimal("88.2"),
        Decimal(15),
    )
    assert "customer" not in {f for f in InvoiceVersion.__dataclass_fields__}


def test_shipment_created_keeps_carrier_and_fulfilment_times():
    [shipment] = entities(example("shipment.created"))
    assert isinstance(shipment, ShipmentVersion)
    assert (shipment.shipment_id, shipment.order_id, shipment.courier_name) == (
        362985662,
        560695738,
        "Shipping App",
    )
    assert (shipment.status, shipment.tracking_number) == ("delivered", "4324233")
    assert (shipment.shipping_cost, shipment.cod_amount) == (Decimal("25.5"), Decimal("10.7"))
    assert shipment.created_at == riyadh(2025, 11, 6, 8, 59)
    assert shipment.delivered_at == shipment.shipped_at == shipment.event_time


def test_review_added_keeps_rating_and_clean_text():
    [review] = entities(example("review.added"))
    assert isinstance(review, ReviewVersion)
    assert (review.product_id, review.order_id, review.rating) == (802593739, 1848408264, 4)
    assert (review.content, review.content_withheld) == ("Tamam", False)
    again = entities(example("review.added"))[0]
    assert again.review_id == review.review_id  # derived the same way: duplicates collapse


@pytest.mark.parametrize(
    "text",
    [
        "Sara was lovely",  # the reviewer's own name
        "call me on 0500 000 001",  # a phone number
        "write to someone@example.org",  # an e-mail address
        "سارة القحطاني راضية",  # a name in Arabic, when the customer is named so
    ],
)
def test_a_review_with_personal_data_stores_none_of_it(text):
    data = example("review.added")["data"]
    data["content"] = text
    data["customer"]["name"] = "سارة القحطاني" if "سارة" in text else "Sara Ahmed"
    review = review_version(data, merchant_id=1, version=1, event_time=riyadh(2024, 1, 1))
    assert review.content is None and review.content_withheld is True
    assert review.rating == 4


@pytest.mark.parametrize("rating", ["six", "9", True])
def test_a_rating_out_of_range_is_a_clear_error(rating):
    data = example("review.added")["data"]
    data["rating"] = rating
    with pytest.raises(InvalidPayload, match=r"review\.rating"):
        review_version(data, merchant_id=1, version=1, event_time=riyadh(2024, 1, 1))
