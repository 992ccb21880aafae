"""Salla tax invoices (`invoice.created`, fired when an order is completed or restored).

Shape from Salla's invoice event docs (docs.salla.dev/1726824m0, as summarised in SallaApp's
partners agent kit; fixture in tests/fixtures/salla/invoice.created.json). The buyer (name,
mobile, e-mail, address) is never read: the warehouse keeps the VAT figures and the lines.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from data_pipeline.domain.dates import parse_optional_datetime
from data_pipeline.domain.envelope import parse_id, parse_optional_id
from data_pipeline.domain.fields import obj, text, with_cleared
from data_pipeline.domain.model import InvoiceLine, InvoiceVersion
from data_pipeline.domain.money import SCALE, parse_currency, parse_decimal

INVOICE_EVENTS: frozenset[str] = frozenset({"invoice.created"})


def invoice_version(
    invoice: dict[str, Any],
    *,
    merchant_id: int,
    version: int,
    event_time: datetime,
    body_key: int = 0,
) -> InvoiceVersion:
    total = invoice.get("total")
    tax = invoice.get("tax")
    tax_object = obj(tax, field="invoice.tax") if isinstance(tax, dict) else {}
    version_ = InvoiceVersion(
        merchant_id=merchant_id,
        invoice_id=parse_id(invoice.get("id"), field="invoice.id"),
        version=version,
        body_key=body_key,
        event_time=event_time,
        order_id=parse_optional_id(invoice.get("order_id"), field="invoice.order_id"),
        number=text(invoice.get("invoice_number"), field="invoice.invoice_number", limit=64),
        invoice_type=text(invoice.get("type"), field="invoice.type", limit=64),
        issued_at=parse_optional_datetime(invoice.get("date"), field="invoice.date"),
        payment_method=text(invoice.get("payment_method"), field="invoice.payment_method"),
        sub_total=parse_decimal(invoice.get("sub_total"), field="invoice.sub_total"),
        shipping_cost=parse_decimal(invoice.get("shipping_cost"), field="invoice.shipping_cost"),
        cod_fee=parse_decimal(invoice.get("cod_cost"), field="invoice.cod_cost"),
        discount=parse_decimal(invoice.get("discount"), field="invoice.discount"),
        tax=parse_decimal(tax, field="invoice.tax"),
        tax_percent=parse_decimal(tax_object.get("percent"), field="invoice.tax.percent"),
        total=parse_decimal(total, field="invoice.total"),
        currency=parse_currency(
            total.get("currency") if isinstance(total, dict) else invoice.get("currency"),
            field="invoice.currency",
        ),
        lines=_lines(invoice.get("items")),
    )
    carried = {f: k in invoice for f, k in _CLEARABLE.items()}
    return with_cleared(version_, carried)


# Fields a corrected invoice can take away (payload key per field).
_CLEARABLE = {"discount": "discount", "cod_fee": "cod_cost", "payment_method": "payment_method"}


def _lines(raw: Any) -> tuple[InvoiceLine, ...] | None:
    if not isinstance(raw, list):
        return None
    lines = []
    for index, item in enumerate(raw):
        entry = obj(item, field=f"invoice.items[{index}]")
        field = f"invoice.items[{index}]"
        tax = entry.get("tax")
        tax_object = tax if isinstance(tax, dict) else {}
        lines.append(
            InvoiceLine(
                item_id=parse_optional_id(entry.get("item_id"), field=f"{field}.item_id"),
                product_id=parse_optional_id(entry.get("product_id"), field=f"{field}.product_id"),
                sku=text(entry.get("sku"), field=f"{field}.sku", limit=200) or "",
                name=text(entry.get("name"), field=f"{field}.name", limit=500) or "",
                quantity=_quantity(entry.get("quantity"), field=f"{field}.quantity"),
                unit_price=parse_decimal(entry.get("price"), field=f"{field}.price"),
                tax=parse_decimal(tax, field=f"{field}.tax"),
                tax_percent=parse_decimal(tax_object.get("percent"), field=f"{field}.tax.percent"),
                total=parse_decimal(entry.get("total"), field=f"{field}.total"),
            )
        )
    return tuple(lines)


def _quantity(value: Any, *, field: str) -> Decimal:
    quantity = parse_decimal(value, field=field)
    return quantity if quantity is not None else Decimal(1).quantize(SCALE)
