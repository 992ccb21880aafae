"""Realistic Salla webhook payloads, and the final state they should produce.

Built from the field names in the Salla reference (§2): JS-Date envelope times, PHP date
objects in Asia/Riyadh, money objects mixed with decimal strings, Arabic and English names.
`StoreSimulation` plays a store's life (products with costs and sales, customers, orders with
options, cash on delivery and drafts through their statuses, item changes, a cancellation, a
deletion, abandoned carts and a recovered one, invoices, shipments, reviews) and records what
the warehouse must show at the end, independently of the pipeline's own transform code, so
tests can compare.
Deterministic for a given seed, so replays produce byte-identical bodies.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

RIYADH = ZoneInfo("Asia/Riyadh")
VAT = Decimal("0.15")
CENTS = Decimal("0.01")

CATALOG: tuple[tuple[str, str, str, Decimal], ...] = (
    ("قهوة عربية 250 جرام", "Arabic Coffee 250g", "AC-250", Decimal("45.00")),
    ("تمر سكري فاخر 1 كيلو", "Premium Sukkari Dates 1kg", "DT-SKR-1", Decimal("60.00")),
    ("بخور العود الكمبودي", "Cambodian Oud Incense", "OUD-KH", Decimal("220.00")),
    ("عسل سدر جبلي 500 جرام", "Mountain Sidr Honey 500g", "HN-SDR-500", Decimal("185.50")),
    ("زعفران إيراني 5 جرام", "Persian Saffron 5g", "SF-5", Decimal("39.99")),
    ("دلة قهوة نحاسية", "Copper Coffee Dallah", "DL-CU", Decimal("149.00")),
    ("طقم فناجين 6 قطع", "Coffee Cups Set of 6", "CUP-6", Decimal("75.00")),
    ("هيل أخضر 100 جرام", "Green Cardamom 100g", "CRD-100", Decimal("32.25")),
    ("شماغ أحمر قطن", "Red Cotton Shemagh", "SHM-RD", Decimal("95.00")),
    ("عطر مسك الطهارة", "White Musk Perfume", "MSK-W", Decimal("58.00")),
    ("سجادة صلاة مخملية", "Velvet Prayer Rug", "RUG-VL", Decimal("120.00")),
    ("قهوة عربية شقراء 500 جرام", "Light Roast Arabic Coffee 500g", "AC-500-L", Decimal("82.00")),
)
CITIES = ("الرياض", "جدة", "مكة المكرمة", "الدمام", "المدينة المنورة", "الخبر")
STATUS_FLOW = ("under_review", "in_progress", "delivering", "delivered", "completed")
STATUS_NAMES = {
    "under_review": "بإنتظار المراجعة",
    "in_progress": "قيد التنفيذ",
    "delivering": "جاري التوصيل",
    "delivered": "تم التوصيل",
    "completed": "تم التنفيذ",
    "canceled": "ملغي",
    "refunded": "مسترجع",
}
PAYMENT_METHODS = ("mada", "credit_card", "apple_pay", "cod", "bank", "tabby")
COD_FEE = Decimal("10.00")
COST_SHARE = Decimal("0.55")  # what a product costs the merchant, as a share of its price
# Every third catalog product is sold in sizes: the large one costs more.
SIZE_OPTION = ("الحجم", "كبير", Decimal("5.00"))


def catalog_sku(index: int) -> str:
    """The catalog repeats past its end as variants with their own SKUs (AC-250, AC-250-V1...)."""
    sku = CATALOG[index % len(CATALOG)][2]
    variant = index // len(CATALOG)
    return f"{sku}-V{variant}" if variant else sku


def js_date(moment: datetime) -> str:
    """Salla's store-event envelope format: 'Sun Jun 26 2022 12:21:48 GMT+0300'."""
    return moment.astimezone(RIYADH).strftime("%a %b %d %Y %H:%M:%S GMT+0300")


def php_date(moment: datetime) -> dict[str, Any]:
    local = moment.astimezone(RIYADH).strftime("%Y-%m-%d %H:%M:%S.000000")
    return {"date": local, "timezone_type": 3, "timezone": "Asia/Riyadh"}


def money(amount: Decimal, currency: str = "SAR") -> dict[str, Any]:
    # Salla sends JSON numbers; whole amounts come without a fraction.
    value = int(amount) if amount == amount.to_integral_value() else float(amount)
    return {"amount": value, "currency": currency}


def envelope(event: str, merchant: int, at: datetime, data: dict[str, Any]) -> dict[str, Any]:
    return {"event": event, "merchant": merchant, "created_at": js_date(at), "data": data}


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass
class Line:
    item_id: int
    product_index: int
    product_id: int
    quantity: int
    unit_price: Decimal  # the product's price plus its options'
    discount: Decimal
    option: tuple[str, str, Decimal] | None = None

    @property
    def total(self) -> Decimal:
        return self.unit_price * self.quantity

    @property
    def variant_key(self) -> str:
        return f"{self.option[0]}={self.option[1]}" if self.option else ""


@dataclass
class SimOrder:
    order_id: int
    reference_id: int
    customer_id: int
    city: str
    created: datetime
    payment_method: str
    lines: list[Line]
    status: str = "under_review"
    shipping: Decimal = Decimal("25")
    coupon_discount: Decimal = Decimal("0")
    deleted: bool = False
    draft: bool = False

    @property
    def cod_fee(self) -> Decimal:
        return COD_FEE if self.payment_method == "cod" else Decimal(0)

    @property
    def sub_total(self) -> Decimal:
        return sum((line.total for line in self.lines), Decimal(0))

    @property
    def tax(self) -> Decimal:
        return (self.sub_total * VAT).quantize(CENTS, rounding=ROUND_HALF_UP)

    @property
    def total(self) -> Decimal:
        return self.sub_total + self.shipping + self.tax + self.cod_fee - self.coupon_discount


@dataclass
class StoreTruth:
    """What the warehouse must show once every event has been loaded."""

    orders: dict[int, SimOrder] = field(default_factory=dict)
    products: dict[int, dict[str, Any]] = field(default_factory=dict)
    customers: dict[int, dict[str, Any]] = field(default_factory=dict)
    carts: dict[int, dict[str, Any]] = field(default_factory=dict)
    invoices: dict[int, dict[str, Any]] = field(default_factory=dict)
    shipments: dict[int, dict[str, Any]] = field(default_factory=dict)
    reviews: list[dict[str, Any]] = field(default_factory=list)

    def live_orders(self) -> list[SimOrder]:
        """Every order the `orders` view shows (drafts included, flagged)."""
        return [order for order in self.orders.values() if not order.deleted]

    def sales(self) -> list[SimOrder]:
        """The orders whose lines are sales: live and not drafts."""
        return [order for order in self.live_orders() if not order.draft]

    def order_total_sum(self) -> Decimal:
        return sum((order.total for order in self.live_orders()), Decimal(0))

    def line_count(self) -> int:
        return sum(len(order.lines) for order in self.sales())

    def line_total_sum(self) -> Decimal:
        return sum((line.total for order in self.sales() for line in order.lines), Decimal(0))

    def recovered_carts(self) -> dict[int, dict[str, Any]]:
        return {k: v for k, v in self.carts.items() if v["status"] == "purchased"}

    def gross_margin(self) -> Decimal:
        """Sum over sold lines of (unit price - the product's current cost) x quantity, for
        products still in the catalog (a deleted product has no cost to show)."""
        return sum(
            (
                (line.unit_price - self.products[line.product_id]["cost_price"]) * line.quantity
                for order in self.sales()
                for line in order.lines
                if not self.products[line.product_id]["deleted"]
            ),
            Decimal(0),
        )

    def variant_units(self) -> dict[str, int]:
        units: dict[str, int] = {}
        for order in self.sales():
            for line in order.lines:
                if line.variant_key:
                    units[line.variant_key] = units.get(line.variant_key, 0) + line.quantity
        return units


class StoreSimulation:
    """Plays a store's activity and emits webhook envelopes in the order they happened."""

    def __init__(self, merchant_id: int = 1305146709, seed: int = 7, start: datetime | None = None):
        self.merchant_id = merchant_id
        self.random = random.Random(seed)
        self.clock = start or datetime(2026, 11, 1, 9, 0, tzinfo=RIYADH)
        self.truth = StoreTruth()
        self.events: list[dict[str, Any]] = []
        self._ids = 100_000 + self.random.randrange(100_000) * 1000
        self.product_ids: list[int] = []
        self.customer_ids: list[int] = []

    # -- helpers -------------------------------------------------------------------------------
    def _next_id(self) -> int:
        self._ids += self.random.randrange(3, 97)
        return self._ids

    def _tick(self, minutes: float = 7) -> datetime:
        self.clock += timedelta(minutes=self.random.uniform(0.5, minutes))
        return self.clock

    def _emit(self, event: str, data: dict[str, Any], at: datetime | None = None) -> None:
        self.events.append(envelope(event, self.merchant_id, at or self._tick(), data))

    # -- catalog and people -------------------------------------------------------------------
    def create_products(self, count: int = len(CATALOG)) -> None:
        for index in range(count):
            arabic, english, _, price = CATALOG[index % len(CATALOG)]
            sku = catalog_sku(index)
            product_id = self._next_id()
            self.product_ids.append(product_id)
            at = self._tick()
            product = self._product_payload(product_id, index, price, at)
            self.truth.products[product_id] = {
                "name": product["name"],
                "sku": sku,
                "price": price,
                "cost_price": (price * COST_SHARE).quantize(CENTS),
                # Product 1 is on a sale that runs into 2030; product 2's sale ended before
                # the store's month began (Salla still sends it): no sale to show.
                "sale_price": (price * Decimal("0.9")).quantize(CENTS) if index == 1 else None,
                "status": "sale",
                "english": english,
                "arabic": arabic,
                "deleted": False,
            }
            self._emit("product.created", product, at)

    def _product_payload(
        self, product_id: int, index: int, price: Decimal, at: datetime
    ) -> dict[str, Any]:
        arabic, english, _, _ = CATALOG[index % len(CATALOG)]
        sku = catalog_sku(index)
        name = arabic if index % 2 == 0 else english
        return {
            "id": product_id,
            "type": "product",
            "name": name,
            "sku": sku,
            "description": f"{arabic} — {english}. منتج أصلي من متجرنا.",
            "price": money(price),
            "taxed_price": money(price * (1 + VAT)),
            "sale_price": money(self._sale_price(index, price)),
            "sale_end": self._sale_end(index),
            "cost_price": money((price * COST_SHARE).quantize(CENTS)),
            "quantity": self.random.choice([20, "50", None]),
            "status": "sale",
            "is_available": True,
            "categories": [{"id": 1, "name": "القهوة والتمور" if index < 6 else "هدايا"}],
            "updated_at": php_date(at),
        }

    @staticmethod
    def _sale_price(index: int, price: Decimal) -> Decimal:
        return (price * Decimal("0.9")).quantize(CENTS) if index in (1, 2) else Decimal(0)

    @staticmethod
    def _sale_end(index: int) -> str | None:
        return {1: "2030-01-01 00:00:00", 2: "2026-10-01 00:00:00"}.get(index)

    def update_product_price(self, product_index: int, price: Decimal) -> None:
        product_id = self.product_ids[product_index]
        at = self._tick()
        self.truth.products[product_id]["price"] = price
        self.truth.products[product_id]["cost_price"] = (price * COST_SHARE).quantize(CENTS)
        if self.truth.products[product_id]["sale_price"] is not None:
            self.truth.products[product_id]["sale_price"] = self._sale_price(product_index, price)
        self._emit(
            "product.price.updated", self._product_payload(product_id, product_index, price, at), at
        )

    def delete_product(self, product_index: int) -> None:
        product_id = self.product_ids[product_index]
        self.truth.products[product_id]["deleted"] = True
        self._emit("product.deleted", {"id": product_id})

    def create_customers(self, count: int) -> None:
        for _ in range(count):
            customer_id = self._next_id()
            city = self.random.choice(CITIES)
            self.customer_ids.append(customer_id)
            at = self._tick()
            self.truth.customers[customer_id] = {
                "city": city,
                "country": "السعودية",
                "created_at": at,
            }
            self._emit(
                "customer.created",
                {
                    "id": customer_id,
                    "first_name": "عميل",
                    "last_name": f"رقم {customer_id % 1000}",
                    "mobile": 500000000 + customer_id % 99999999,
                    "mobile_code": "+966",
                    "email": f"customer{customer_id}@example.com",
                    "gender": "female",
                    "city": city,
                    "country": "السعودية",
                    "country_code": "SA",
                    "currency": "SAR",
                    "updated_at": php_date(at),
                },
                at,
            )

    def move_customer(self, customer_index: int, city: str) -> None:
        """customer.updated: a new city; the sign-up time stays."""
        customer_id = self.customer_ids[customer_index]
        at = self._tick()
        self.truth.customers[customer_id]["city"] = city
        self._emit(
            "customer.updated",
            {
                "id": customer_id,
                "first_name": "عميل",
                "city": city,
                "country": "السعودية",
                "country_code": "SA",
                "currency": "SAR",
                "updated_at": php_date(at),
            },
            at,
        )

    # -- orders --------------------------------------------------------------------------------
    def create_order(
        self, lines: int | None = None, gap_minutes: float = 30, *, draft: bool = False
    ) -> SimOrder:
        customer_id = self.random.choice(self.customer_ids)
        chosen = self.random.sample(
            range(len(self.product_ids)), lines or self.random.randint(1, 4)
        )
        order = SimOrder(
            order_id=self._next_id(),
            reference_id=40_000_000 + self._ids % 10_000_000,
            customer_id=customer_id,
            city=self.truth.customers[customer_id]["city"],
            created=self._tick(gap_minutes),
            payment_method=self.random.choice(PAYMENT_METHODS),
            lines=[self._line(index) for index in chosen],
            coupon_discount=self.random.choice([Decimal(0), Decimal(0), Decimal("10.00")]),
            draft=draft,
        )
        self.truth.orders[order.order_id] = order
        self._emit("order.created", self._order_payload(order), order.created)
        return order

    def _line(self, product_index: int) -> Line:
        product_id = self.product_ids[product_index]
        price = self.truth.products[product_id]["price"]
        option = SIZE_OPTION if product_index % 3 == 0 else None
        return Line(
            self._next_id(),
            product_index,
            product_id,
            self.random.randint(1, 3),
            price + (option[2] if option else Decimal(0)),
            Decimal(0),
            option,
        )

    def advance_status(self, order: SimOrder, status: str, *, nested: bool = False) -> None:
        order.status = status
        payload = self._order_payload(order)
        if nested:  # the App Functions shape: the order nested under data.order (reference §2.3)
            payload = {
                "id": self._next_id(),
                "status": STATUS_NAMES[status],
                "note": "",
                "created_at": php_date(self.clock),
                "order": payload,
            }
        self._emit("order.status.updated", payload)

    def change_items(self, order: SimOrder) -> None:
        """Drop the first line, add another product, bump a quantity: order.products.updated."""
        dropped = order.lines.pop(0)
        unused = [
            i
            for i in range(len(self.product_ids))
            if i not in {line.product_index for line in order.lines} | {dropped.product_index}
        ]
        order.lines.append(self._line(self.random.choice(unused)))
        order.lines[0].quantity += 1
        self._emit("order.products.updated", self._order_payload(order))

    def cancel(self, order: SimOrder) -> None:
        order.status = "canceled"
        self._emit("order.cancelled", self._order_payload(order))

    def delete(self, order: SimOrder) -> None:
        order.deleted = True
        self._emit("order.deleted", self._order_payload(order))

    def _order_payload(self, order: SimOrder) -> dict[str, Any]:
        discounts = (
            [
                {
                    "title": "رمضان",
                    "type": "special",
                    "code": "RMD10",
                    "discount": f"{order.coupon_discount:.2f}",
                    "discounted_shipping": 0,
                }
            ]
            if order.coupon_discount
            else []
        )
        return {
            "id": order.order_id,
            "reference_id": order.reference_id,
            "date": php_date(order.created),
            "source": "store",
            "payment_method": order.payment_method,
            "status": {
                "id": 566146469,
                "name": STATUS_NAMES[order.status],
                "slug": order.status,
                "customized": {"id": 986688842, "name": STATUS_NAMES[order.status]},
            },
            "currency": "SAR",
            "draft": order.draft,
            "amounts": {
                "sub_total": money(order.sub_total),
                "shipping_cost": money(order.shipping),
                "cash_on_delivery": money(order.cod_fee),
                "tax": {"percent": "15.00", "amount": money(order.tax)},
                "discounts": discounts,
                "total": money(order.total),
            },
            "shipping": {
                "company": "SMSA",
                "receiver": {"name": "مستلم", "phone": "966500000001"},
                "address": {"country": "SA", "city": order.city, "shipping_address": "حي"},
            },
            "items": [self._item_payload(line) for line in order.lines],
            "customer": {
                "id": order.customer_id,
                "first_name": "عميل",
                "last_name": "كريم",
                "mobile": 500000001,
                "mobile_code": "+966",
                "email": "c@example.com",
                "city": order.city,
                "country": "السعودية",
                "country_code": "SA",
            },
        }

    def _item_payload(self, line: Line) -> dict[str, Any]:
        product = self.truth.products[line.product_id]
        return {
            "id": line.item_id,
            "name": product["name"],
            "sku": product["sku"],
            "quantity": line.quantity,
            "currency": "SAR",
            "amounts": {
                "price_without_tax": money(line.unit_price),
                "total_discount": money(line.discount),
                "total": money(line.total),
            },
            "product": {
                "id": line.product_id,
                "sku": product["sku"],
                "name": product["name"],
                "price": money(product["price"]),
            },
            "options": [
                {
                    "id": 1197801866,
                    "product_option_id": 60176141,
                    "name": line.option[0],
                    "type": "radio",
                    "value": [
                        {"id": 408420634, "name": line.option[1], "price": money(line.option[2])}
                    ],
                }
            ]
            if line.option
            else [],
        }

    # -- carts and the app ---------------------------------------------------------------------
    def abandon_cart(self, *, old_shape: bool = False) -> None:
        cart_id = self._next_id()
        customer_id = self.random.choice(self.customer_ids)
        lines = [
            (self.product_ids[i], self.random.randint(1, 2))
            for i in self.random.sample(range(len(self.product_ids)), 2)
        ]
        total = sum((self.truth.products[p]["price"] * q for p, q in lines), Decimal(0))
        at = self._tick()
        self.truth.carts[cart_id] = {
            "total": total,
            "item_count": sum(q for _, q in lines),
            "status": "active",
            "recovered_order_id": None,
            "items": {p: q for p, q in lines},
            "customer_id": customer_id,
        }
        items = [{"id": self._next_id(), "product_id": p, "quantity": q} for p, q in lines]
        customer = {
            "id": customer_id,
            "name": "عميل",
            "mobile": "+966500000000",
            "email": "u@example.com",
            "city": "الرياض",
            "country": "السعودية",
        }
        if old_shape:
            data = {
                "id": cart_id,
                "subtotal": float(total),
                "totla": f"{total:.2f}",
                "status": "active",
                "items_count": len(items),
                "items": items,
                "customer": customer,
                "updated_at": php_date(at),
            }
        else:
            data = {
                "id": cart_id,
                "total": money(total),
                "subtotal": money(total),
                "total_discount": money(Decimal(0)),
                "age_in_minutes": 83,
                "checkout_url": f"https://salla.sa/store/checkout/{cart_id}",
                "created_at": php_date(at - timedelta(hours=1)),
                "updated_at": php_date(at),
                "customer": customer,
                "items": items,
            }
        self._emit("abandoned.cart", data, at)

    def recover_cart(self, cart_id: int) -> SimOrder:
        """The customer adds a product (abandoned.cart.updated), then buys the cart: an order,
        and abandoned.cart.purchased naming it."""
        cart = self.truth.carts[cart_id]
        extra = next(p for p in self.product_ids if p not in cart["items"])
        cart["items"][extra] = 1
        cart["item_count"] += 1
        cart["total"] += self.truth.products[extra]["price"]
        at = self._tick()
        items = [
            {"id": 1_000 + i, "product_id": p, "quantity": q}
            for i, (p, q) in enumerate(cart["items"].items())
        ]
        self._emit(
            "abandoned.cart.updated",
            {
                "id": cart_id,
                "total": money(cart["total"]),
                "subtotal": money(cart["total"]),
                "updated_at": php_date(at),
                "items": items,
            },
            at,
        )
        order = self.create_order(lines=2, gap_minutes=5)
        cart.update(status="purchased", recovered_order_id=order.order_id)
        at = self._tick()
        self._emit(
            "abandoned.cart.purchased",
            {
                "id": cart_id,
                "status": "purchased",
                "order_id": order.order_id,
                "total": money(cart["total"]),
                "subtotal": money(cart["total"]),
            },
            at,
        )
        return order

    # -- fulfilment, invoices, reviews ----------------------------------------------------------
    def ship(self, order: SimOrder, *, delivered: bool) -> None:
        shipment_id = self._next_id()
        created = self._tick()
        self.truth.shipments[shipment_id] = {
            "order_id": order.order_id,
            "status": "delivered" if delivered else "created",
            "created_at": created,
            "delivered_at": None,
        }
        payload = {
            "id": shipment_id,
            "order_id": order.order_id,
            "order_reference_id": order.reference_id,
            "type": "shipment",
            "courier_id": 1927161457,
            "courier_name": "SMSA",
            "tracking_number": f"TRK{shipment_id}",
            "status": "created",
            "total": money(order.shipping),
            "cash_on_delivery": money(order.cod_fee),
            "is_international": False,
            "ship_to": {"name": "مستلم", "city": order.city, "address_line": "حي"},
            "created_at": php_date(created),
        }
        self._emit("shipment.created", payload, created)
        if delivered:
            at = self._tick(240)
            self.truth.shipments[shipment_id]["delivered_at"] = at
            self._emit("shipment.updated", {**payload, "status": "delivered"}, at)

    def invoice(self, order: SimOrder) -> None:
        invoice_id = self._next_id()
        at = self._tick()
        self.truth.invoices[invoice_id] = {
            "order_id": order.order_id,
            "total": order.total,
            "tax": order.tax,
            "lines": len(order.lines),
        }
        self._emit(
            "invoice.created",
            {
                "id": invoice_id,
                "invoice_number": len(self.truth.invoices),
                "uuid": f"00000000-0000-4000-8000-{invoice_id:012d}",
                "order_id": order.order_id,
                "type": "فاتورة ضريبية",
                "date": at.strftime("%Y-%m-%d %H:%M:%S"),
                "payment_method": order.payment_method,
                "sub_total": money(order.sub_total),
                "shipping_cost": {**money(order.shipping), "taxable": True},
                "cod_cost": {**money(order.cod_fee), "taxable": True},
                "discount": money(order.coupon_discount),
                "tax": {"percent": 15, "amount": money(order.tax)},
                "total": money(order.total),
                "items": [
                    {
                        "id": self._next_id(),
                        "item_id": line.item_id,
                        "product_id": line.product_id,
                        "name": self.truth.products[line.product_id]["name"],
                        "sku": self.truth.products[line.product_id]["sku"],
                        "quantity": line.quantity,
                        "type": "product",
                        "price": money(line.unit_price),
                        "tax": {"percent": 15, "amount": money((line.total * VAT).quantize(CENTS))},
                        "total": money(line.total),
                    }
                    for line in order.lines
                ],
                "customer": {"id": order.customer_id, "first_name": "عميل", "mobile": 500000001},
            },
            at,
        )

    def review(self, order: SimOrder, rating: int, content: str) -> None:
        """review.added; the text may name the customer (then it must not be stored)."""
        line = order.lines[0]
        self.truth.reviews.append(
            {
                "order_id": order.order_id,
                "product_id": line.product_id,
                "rating": rating,
                "content": None if "سارة" in content else content,
            }
        )
        self._emit(
            "review.added",
            {
                "type": "rating",
                "rating": str(rating),
                "content": content,
                "customer": {
                    "id": order.customer_id,
                    "name": "سارة القحطاني",
                    "mobile": "+966500000000",
                    "email": "sara@example.com",
                },
                "product": {"id": line.product_id, "type": "product", "status": "sale"},
                "order": {"id": order.order_id, "reference_id": order.reference_id},
            },
        )

    def authorize_app(self, access_token: str, refresh_token: str) -> None:
        at = self._tick()
        self.events.append(
            {
                "event": "app.store.authorize",
                "merchant": self.merchant_id,
                "created_at": at.astimezone(RIYADH).strftime("%Y-%m-%d %H:%M:%S"),
                "data": {
                    "access_token": access_token,
                    "refresh_token": refresh_token,
                    "expires": int((at + timedelta(days=14)).timestamp()),
                    "scope": "settings.read orders.read products.read customers.read"
                    " offline_access",
                    "token_type": "bearer",
                },
            }
        )

    def unmodeled_event(self) -> None:
        self._emit("specialoffer.created", {"id": self._next_id(), "name": "عرض الشتاء"})


def demo_store(merchant_id: int = 1305146709, seed: int = 7, orders: int = 40) -> StoreSimulation:
    """A store's month: the event stream `make demo` and the convergence tests replay."""
    if orders < 4:
        raise ValueError("the demo store needs at least 4 orders")
    store = StoreSimulation(merchant_id=merchant_id, seed=seed)
    store.authorize_app("ory_at_demo_access_token", "ory_rt_demo_refresh_token")
    store.create_products()
    store.create_customers(8)
    placed = [store.create_order(gap_minutes=900) for _ in range(orders)]  # about two weeks
    for index, order in enumerate(placed):
        steps = store.random.randint(0, len(STATUS_FLOW) - 1)
        for status in STATUS_FLOW[1 : steps + 1]:
            store.advance_status(order, status, nested=index % 7 == 3)
    store.update_product_price(0, Decimal("49.50"))
    store.update_product_price(3, Decimal("179.00"))
    store.change_items(placed[1])
    store.change_items(placed[5 % len(placed)])
    store.cancel(placed[2])
    store.delete(placed[3])
    store.delete_product(len(store.product_ids) - 1)
    store.abandon_cart()
    store.abandon_cart()
    store.abandon_cart(old_shape=True)
    store.recover_cart(next(iter(store.truth.carts)))
    store.create_order(draft=True)
    store.move_customer(0, "تبوك")
    for order in placed:
        if order.deleted or order.status not in ("delivered", "completed"):
            continue
        store.ship(order, delivered=True)
        if order.status == "completed":
            store.invoice(order)
    in_progress = next((o for o in placed if o.status == "in_progress"), None)
    if in_progress is not None:
        store.ship(in_progress, delivered=False)
    store.review(placed[0], 5, "ممتاز، القهوة طازجة")
    store.review(placed[-1], 2, "وصلني متأخر، سارة القحطاني 0500000000")
    store.unmodeled_event()
    return store


def delivery_schedule(
    events: list[dict[str, Any]], *, seed: int = 11, duplicate_share: float = 0.3
) -> list[bytes]:
    """Bodies as an unreliable sender delivers them: some duplicated, all shuffled."""
    rng = random.Random(seed)
    bodies = [encode(event) for event in events]
    deliveries = bodies + [body for body in bodies if rng.random() < duplicate_share]
    rng.shuffle(deliveries)
    return deliveries


def sample_envelope(event: str, merchant_id: int = 1305146709) -> dict[str, Any]:
    """One realistic envelope of `event` (an empty `data` for events we do not model)."""
    store = StoreSimulation(merchant_id=merchant_id, seed=random.randrange(1 << 30))
    store.clock = datetime.now(RIYADH) - timedelta(hours=2)
    if event.startswith("order."):
        store.create_products(4)
        store.create_customers(1)
        order = store.create_order()
        if event == "order.status.updated":
            store.advance_status(order, "in_progress")
        elif event == "order.cancelled":
            store.cancel(order)
        elif event == "order.deleted":
            store.delete(order)
        elif event != "order.created":
            store._emit(event, store._order_payload(order))
    elif event.startswith("product."):
        store.create_products(1)
        if event != "product.created":
            store._emit(event, store.events[-1]["data"])
    elif event.startswith("customer."):
        store.create_customers(1)
        if event != "customer.created":
            store._emit(event, store.events[-1]["data"])
    elif event == "abandoned.cart":
        store.create_products(3)
        store.create_customers(1)
        store.abandon_cart()
    elif event == "app.store.authorize":
        store.authorize_app("ory_at_sample", "ory_rt_sample")
    else:
        store._emit(event, {})
    return store.events[-1]
