"""Versioned warehouse migrations (the same SQL runs on chDB and ClickHouse Cloud).

Storage: every version of every Salla object is a row in a `*_versions` table (ReplacingMergeTree
ordered by the object key *and* version, so redelivered copies of one version collapse). Fields
a payload did not carry are NULL. Each field of an object's state is `argMax(field, version)`,
and ClickHouse aggregate functions skip NULLs, so every field shows the newest version that said
anything about it, and a deletion (the newest version has `is_deleted = 1`) hides the object.
Arrival order never matters.

Line items are stored as a whole set per order version (in the order's version row since
migration 4, in `order_item_sets` before): the set of the newest version that carried items
wins, so items removed by an update disappear.

The read contract is the views without a suffix. Since migration 4 they read the objects'
current state, materialized in `*_current` tables by the loader (adapters/clickhouse_current.py,
docs/warehouse.md), instead of aggregating every version at query time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from data_pipeline.adapters.clickhouse_current import (
    ABANDONED_CARTS,
    CUSTOMERS,
    ORDER_ITEMS,
    ORDERS,
    PRODUCTS,
    full_refresh,
    order_lines_select,
)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


_MONEY = "Nullable(Decimal(18, 4))"
_TIME = "Nullable(DateTime64(3, 'UTC'))"

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "raw events archive and versioned entity tables",
        (
            """CREATE TABLE IF NOT EXISTS {db}.raw_events (
                merchant_id UInt64,
                body_sha256 FixedString(64),
                event LowCardinality(String),
                event_created_at Nullable(DateTime64(3, 'UTC')),
                received_at DateTime64(3, 'UTC'),
                source LowCardinality(String),
                body String CODEC(ZSTD(3))
            ) ENGINE = ReplacingMergeTree
            ORDER BY (merchant_id, body_sha256)""",
            f"""CREATE TABLE IF NOT EXISTS {{db}}.order_versions (
                merchant_id UInt64,
                order_id UInt64,
                version UInt64,
                is_deleted UInt8,
                event_time DateTime64(3, 'UTC'),
                reference_id Nullable(UInt64),
                status Nullable(String),
                status_name Nullable(String),
                total {_MONEY},
                sub_total {_MONEY},
                shipping_cost {_MONEY},
                tax {_MONEY},
                discount {_MONEY},
                currency Nullable(String),
                payment_method Nullable(String),
                customer_id Nullable(UInt64),
                city Nullable(String),
                country Nullable(String),
                source Nullable(String),
                created_at {_TIME},
                loaded_at DateTime64(3, 'UTC') DEFAULT now64(3)
            ) ENGINE = ReplacingMergeTree
            ORDER BY (merchant_id, order_id, version)""",
            """CREATE TABLE IF NOT EXISTS {db}.order_item_sets (
                merchant_id UInt64,
                order_id UInt64,
                version UInt64,
                items Nested(
                    item_id UInt64,
                    product_id Nullable(UInt64),
                    sku String,
                    name String,
                    quantity Decimal(18, 4),
                    unit_price Decimal(18, 4),
                    discount Decimal(18, 4),
                    tax Decimal(18, 4),
                    line_total Decimal(18, 4),
                    currency Nullable(String)
                ),
                loaded_at DateTime64(3, 'UTC') DEFAULT now64(3)
            ) ENGINE = ReplacingMergeTree(version)
            ORDER BY (merchant_id, order_id)""",
            f"""CREATE TABLE IF NOT EXISTS {{db}}.product_versions (
                merchant_id UInt64,
                product_id UInt64,
                version UInt64,
                is_deleted UInt8,
                event_time DateTime64(3, 'UTC'),
                name Nullable(String),
                description Nullable(String),
                sku Nullable(String),
                price {_MONEY},
                sale_price {_MONEY},
                currency Nullable(String),
                status Nullable(String),
                product_type Nullable(String),
                quantity Nullable(Int64),
                category Nullable(String),
                updated_at {_TIME},
                loaded_at DateTime64(3, 'UTC') DEFAULT now64(3)
            ) ENGINE = ReplacingMergeTree
            ORDER BY (merchant_id, product_id, version)""",
            f"""CREATE TABLE IF NOT EXISTS {{db}}.customer_versions (
                merchant_id UInt64,
                customer_id UInt64,
                version UInt64,
                event_time DateTime64(3, 'UTC'),
                city Nullable(String),
                country Nullable(String),
                country_code Nullable(String),
                currency Nullable(String),
                updated_at {_TIME},
                loaded_at DateTime64(3, 'UTC') DEFAULT now64(3)
            ) ENGINE = ReplacingMergeTree
            ORDER BY (merchant_id, customer_id, version)""",
            f"""CREATE TABLE IF NOT EXISTS {{db}}.abandoned_cart_versions (
                merchant_id UInt64,
                cart_id UInt64,
                version UInt64,
                event_time DateTime64(3, 'UTC'),
                customer_id Nullable(UInt64),
                total {_MONEY},
                subtotal {_MONEY},
                discount {_MONEY},
                currency Nullable(String),
                item_count {_MONEY},
                coupon_code Nullable(String),
                created_at {_TIME},
                updated_at {_TIME},
                loaded_at DateTime64(3, 'UTC') DEFAULT now64(3)
            ) ENGINE = ReplacingMergeTree
            ORDER BY (merchant_id, cart_id, version)""",
        ),
    ),
    Migration(
        2,
        "read contract views",
        (
            """CREATE OR REPLACE VIEW {db}.orders AS
            SELECT
                merchant_id,
                order_id,
                argMax(reference_id, version) AS reference_id,
                argMax(status, version) AS status,
                argMax(status_name, version) AS status_name,
                argMax(total, version) AS total,
                argMax(sub_total, version) AS sub_total,
                argMax(shipping_cost, version) AS shipping_cost,
                argMax(tax, version) AS tax,
                argMax(discount, version) AS discount,
                argMax(currency, version) AS currency,
                argMax(payment_method, version) AS payment_method,
                argMax(customer_id, version) AS customer_id,
                argMax(city, version) AS city,
                argMax(country, version) AS country,
                argMax(source, version) AS source,
                argMax(created_at, version) AS created_at,
                max(event_time) AS updated_at
            FROM {db}.order_versions
            GROUP BY merchant_id, order_id
            HAVING argMax(is_deleted, version) = 0""",
            """CREATE OR REPLACE VIEW {db}.sales_facts AS
            SELECT
                i.merchant_id AS merchant_id,
                i.order_id AS order_id,
                i.item_id AS item_id,
                i.product_id AS product_id,
                i.sku AS sku,
                i.name AS name,
                i.quantity AS quantity,
                i.unit_price AS unit_price,
                i.discount AS discount,
                i.tax AS tax,
                i.line_total AS line_total,
                ifNull(i.currency, o.currency) AS currency,
                o.status AS order_status,
                o.created_at AS order_created_at
            FROM (
                SELECT
                    merchant_id, order_id,
                    items.item_id AS item_id, items.product_id AS product_id,
                    items.sku AS sku, items.name AS name, items.quantity AS quantity,
                    items.unit_price AS unit_price, items.discount AS discount,
                    items.tax AS tax, items.line_total AS line_total,
                    items.currency AS currency
                FROM {db}.order_item_sets FINAL
                ARRAY JOIN items
            ) AS i
            INNER JOIN {db}.orders AS o
                ON i.merchant_id = o.merchant_id AND i.order_id = o.order_id""",
            """CREATE OR REPLACE VIEW {db}.products AS
            SELECT
                merchant_id,
                product_id,
                argMax(name, version) AS name,
                argMax(description, version) AS description,
                argMax(sku, version) AS sku,
                argMax(price, version) AS price,
                argMax(sale_price, version) AS sale_price,
                argMax(currency, version) AS currency,
                argMax(status, version) AS status,
                argMax(product_type, version) AS product_type,
                argMax(quantity, version) AS quantity,
                argMax(category, version) AS category,
                max(event_time) AS updated_at
            FROM {db}.product_versions
            GROUP BY merchant_id, product_id
            HAVING argMax(is_deleted, version) = 0""",
            """CREATE OR REPLACE VIEW {db}.customers AS
            SELECT
                merchant_id,
                customer_id,
                argMax(city, version) AS city,
                argMax(country, version) AS country,
                argMax(country_code, version) AS country_code,
                argMax(currency, version) AS currency,
                max(event_time) AS updated_at
            FROM {db}.customer_versions
            GROUP BY merchant_id, customer_id""",
            """CREATE OR REPLACE VIEW {db}.abandoned_carts AS
            SELECT
                merchant_id,
                cart_id,
                argMax(customer_id, version) AS customer_id,
                argMax(total, version) AS total,
                argMax(subtotal, version) AS subtotal,
                argMax(discount, version) AS discount,
                argMax(currency, version) AS currency,
                argMax(item_count, version) AS item_count,
                argMax(coupon_code, version) AS coupon_code,
                argMax(created_at, version) AS created_at,
                max(event_time) AS updated_at
            FROM {db}.abandoned_cart_versions
            GROUP BY merchant_id, cart_id""",
        ),
    ),
    Migration(
        3,
        "local vector index",
        (
            # The vector store of local mode (production uses Pinecone). One row per write;
            # the newest `seq` of a document wins, a tombstone (is_deleted) removes it.
            """CREATE TABLE IF NOT EXISTS {db}.rag_vectors (
                namespace String,
                doc_id String,
                seq UInt64,
                is_deleted UInt8,
                embedding Array(Float32),
                metadata String,
                written_at DateTime64(3, 'UTC') DEFAULT now64(3)
            ) ENGINE = ReplacingMergeTree(seq)
            ORDER BY (namespace, doc_id)""",
        ),
    ),
)

_ITEMS = """items Nested(
    item_id UInt64,
    product_id Nullable(UInt64),
    sku String,
    name String,
    quantity Decimal(18, 4),
    unit_price Decimal(18, 4),
    discount Decimal(18, 4),
    tax Decimal(18, 4),
    line_total Decimal(18, 4),
    currency Nullable(String)
)"""
# A partition untouched for this long is merged into one part in the background, which FINAL
# then reads without merging (ClickHouse's min_age_to_force_merge_seconds).
_SETTLED = (
    "min_age_to_force_merge_seconds = 300, min_age_to_force_merge_on_partition_only = 1, "
    "allow_nullable_key = 1"
)
_SNAPSHOT = "versions UInt32, is_deleted UInt8, version UInt64"


def _current_tables() -> tuple[str, ...]:
    return (
        f"""CREATE TABLE IF NOT EXISTS {{db}}.orders_current (
            merchant_id UInt64,
            order_id UInt64,
            {_SNAPSHOT},
            reference_id Nullable(UInt64),
            status LowCardinality(Nullable(String)),
            status_name Nullable(String),
            total {_MONEY},
            sub_total {_MONEY},
            shipping_cost {_MONEY},
            tax {_MONEY},
            discount {_MONEY},
            currency LowCardinality(Nullable(String)),
            payment_method LowCardinality(Nullable(String)),
            customer_id Nullable(UInt64),
            city Nullable(String),
            country LowCardinality(Nullable(String)),
            source LowCardinality(Nullable(String)),
            created_at {_TIME},
            updated_at DateTime64(3, 'UTC'),
            {_ITEMS},
            INDEX created_at_minmax created_at TYPE minmax GRANULARITY 1
        ) ENGINE = ReplacingMergeTree(versions, is_deleted)
        PARTITION BY toYear(created_at)
        ORDER BY (merchant_id, order_id)
        SETTINGS {_SETTLED}""",
        f"""CREATE TABLE IF NOT EXISTS {{db}}.products_current (
            merchant_id UInt64,
            product_id UInt64,
            {_SNAPSHOT},
            name Nullable(String),
            description Nullable(String),
            sku Nullable(String),
            price {_MONEY},
            sale_price {_MONEY},
            currency LowCardinality(Nullable(String)),
            status LowCardinality(Nullable(String)),
            product_type LowCardinality(Nullable(String)),
            quantity Nullable(Int64),
            category Nullable(String),
            updated_at DateTime64(3, 'UTC')
        ) ENGINE = ReplacingMergeTree(versions, is_deleted)
        ORDER BY (merchant_id, product_id)
        SETTINGS {_SETTLED}""",
        f"""CREATE TABLE IF NOT EXISTS {{db}}.customers_current (
            merchant_id UInt64,
            customer_id UInt64,
            {_SNAPSHOT},
            city Nullable(String),
            country LowCardinality(Nullable(String)),
            country_code LowCardinality(Nullable(String)),
            currency LowCardinality(Nullable(String)),
            updated_at DateTime64(3, 'UTC')
        ) ENGINE = ReplacingMergeTree(versions, is_deleted)
        ORDER BY (merchant_id, customer_id)
        SETTINGS {_SETTLED}""",
        f"""CREATE TABLE IF NOT EXISTS {{db}}.abandoned_carts_current (
            merchant_id UInt64,
            cart_id UInt64,
            {_SNAPSHOT},
            customer_id Nullable(UInt64),
            total {_MONEY},
            subtotal {_MONEY},
            discount {_MONEY},
            currency LowCardinality(Nullable(String)),
            item_count {_MONEY},
            coupon_code Nullable(String),
            created_at {_TIME},
            updated_at DateTime64(3, 'UTC'),
            INDEX created_at_minmax created_at TYPE minmax GRANULARITY 1
        ) ENGINE = ReplacingMergeTree(versions, is_deleted)
        PARTITION BY toYear(created_at)
        ORDER BY (merchant_id, cart_id)
        SETTINGS {_SETTLED}""",
    )


# FINAL per partition: an object lives in one partition (tombstones see to the one exception).
_FINAL = "FINAL WHERE is_deleted = 0 SETTINGS do_not_merge_across_partitions_select_final = 1"
_CONTRACT_VIEWS = (
    f"""CREATE OR REPLACE VIEW {{db}}.orders AS
    SELECT merchant_id, order_id, reference_id, status, status_name, total, sub_total,
        shipping_cost, tax, discount, currency, payment_method, customer_id, city, country,
        source, created_at, updated_at
    FROM {{db}}.orders_current {_FINAL}""",
    """CREATE OR REPLACE VIEW {db}.sales_facts AS
    SELECT
        merchant_id,
        order_id,
        items.item_id AS item_id,
        items.product_id AS product_id,
        items.sku AS sku,
        items.name AS name,
        items.quantity AS quantity,
        items.unit_price AS unit_price,
        items.discount AS discount,
        items.tax AS tax,
        items.line_total AS line_total,
        ifNull(items.currency, currency) AS currency,
        status AS order_status,
        created_at AS order_created_at
    FROM {db}.orders_current FINAL
    ARRAY JOIN items
    WHERE is_deleted = 0
    SETTINGS do_not_merge_across_partitions_select_final = 1""",
    f"""CREATE OR REPLACE VIEW {{db}}.products AS
    SELECT merchant_id, product_id, name, description, sku, price, sale_price, currency,
        status, product_type, quantity, category, updated_at
    FROM {{db}}.products_current {_FINAL}""",
    f"""CREATE OR REPLACE VIEW {{db}}.customers AS
    SELECT merchant_id, customer_id, city, country, country_code, currency, updated_at
    FROM {{db}}.customers_current {_FINAL}""",
    f"""CREATE OR REPLACE VIEW {{db}}.abandoned_carts AS
    SELECT merchant_id, cart_id, customer_id, total, subtotal, discount, currency, item_count,
        coupon_code, created_at, updated_at
    FROM {{db}}.abandoned_carts_current {_FINAL}""",
)

# The current-state tables as migration 4 created them (a migration's SQL never changes; later
# migrations add to the definitions in clickhouse_current).
_V4_TABLES = (
    replace(
        ORDERS,
        lines=None,
        fields=ORDERS.fields[: ORDERS.fields.index("cod_fee")],
        items=ORDER_ITEMS[:10],
        clearable=(),
        version_key=("version",),
    ),
    replace(
        PRODUCTS,
        fields=PRODUCTS.fields[: PRODUCTS.fields.index("cost_price")],
        aggregates=(),
        clearable=(),
        version_key=("version",),
    ),
    replace(CUSTOMERS, aggregates=(), clearable=(), version_key=("version",)),
    replace(
        ABANDONED_CARTS,
        fields=ABANDONED_CARTS.fields[: ABANDONED_CARTS.fields.index("checkout_url")],
        aggregates=(),
        items=(),
        clearable=(),
        version_key=("version",),
    ),
)

_ORDER_VERSION_COLUMNS = (
    "merchant_id, order_id, version, is_deleted, event_time, reference_id, status, status_name, "
    "total, sub_total, shipping_cost, tax, discount, currency, payment_method, customer_id, "
    "city, country, source, created_at, loaded_at"
)

MIGRATIONS += (
    Migration(
        4,
        "current-state tables behind the read contract",
        (
            # Line items move into the order's version row, so an order version and its items
            # are inserted (and seen) together.
            f"ALTER TABLE {{db}}.order_versions ADD COLUMN IF NOT EXISTS has_items UInt8 DEFAULT 0,"
            f" ADD COLUMN IF NOT EXISTS {_ITEMS}",
            # Keep every stored item set: a copy of each version row that carried one, with its
            # items (identical keys collapse, and `has_items` tells the snapshot which to take).
            f"""INSERT INTO {{db}}.order_versions ({_ORDER_VERSION_COLUMNS}, has_items,
                items.item_id, items.product_id, items.sku, items.name, items.quantity,
                items.unit_price, items.discount, items.tax, items.line_total, items.currency)
            SELECT {", ".join(f"v.{c.strip()}" for c in _ORDER_VERSION_COLUMNS.split(","))}, 1,
                s.items.item_id, s.items.product_id, s.items.sku, s.items.name,
                s.items.quantity, s.items.unit_price, s.items.discount, s.items.tax,
                s.items.line_total, s.items.currency
            FROM {{db}}.order_versions AS v
            INNER JOIN {{db}}.order_item_sets AS s
                ON v.merchant_id = s.merchant_id AND v.order_id = s.order_id
                AND v.version = s.version
            WHERE v.has_items = 0""",
            *_current_tables(),
            *(full_refresh(table, "{db}") for table in _V4_TABLES),
            *_CONTRACT_VIEWS,
        ),
    ),
)

_CART_ITEMS = """items Nested(
    product_id Nullable(UInt64),
    quantity Decimal(18, 4),
    unit_price Nullable(Decimal(18, 4)),
    line_total Nullable(Decimal(18, 4))
)"""
_INVOICE_LINES = """lines Nested(
    item_id Nullable(UInt64),
    product_id Nullable(UInt64),
    sku String,
    name String,
    quantity Decimal(18, 4),
    unit_price Nullable(Decimal(18, 4)),
    tax Nullable(Decimal(18, 4)),
    tax_percent Nullable(Decimal(18, 4)),
    total Nullable(Decimal(18, 4))
)"""
_ORDER_ITEM_ADDITIONS = (
    "items.option_names Array(Array(String))",
    "items.option_values Array(Array(String))",
    "items.option_prices Array(Array(Decimal(18, 4)))",
    "items.variant_key Array(String)",
)
_ADDITIONS = {
    "order_versions": (
        f"cod_fee {_MONEY}",
        "coupon_code Nullable(String)",
        "is_draft Nullable(UInt8)",
        *_ORDER_ITEM_ADDITIONS,
    ),
    "orders_current": (
        f"cod_fee {_MONEY}",
        "coupon_code Nullable(String)",
        "is_draft Nullable(UInt8)",
        *_ORDER_ITEM_ADDITIONS,
    ),
    "product_versions": (f"cost_price {_MONEY}", f"sale_ends_at {_TIME}"),
    "products_current": (f"cost_price {_MONEY}", f"sale_ends_at {_TIME}"),
    "customer_versions": (f"created_at {_TIME}",),
    "customers_current": (f"created_at {_TIME}",),
    "abandoned_cart_versions": (
        "status LowCardinality(Nullable(String))",
        "checkout_url Nullable(String)",
        "recovered_order_id Nullable(UInt64)",
        f"recovered_at {_TIME}",
        "has_items UInt8 DEFAULT 0",
        _CART_ITEMS,
    ),
    "abandoned_carts_current": (
        "status LowCardinality(Nullable(String))",
        "checkout_url Nullable(String)",
        "recovered_order_id Nullable(UInt64)",
        f"recovered_at {_TIME}",
        _CART_ITEMS,
    ),
}
_VERSION_ENGINE = "ENGINE = ReplacingMergeTree"
_NEW_TABLES = (
    f"""CREATE TABLE IF NOT EXISTS {{db}}.invoice_versions (
        merchant_id UInt64,
        invoice_id UInt64,
        version UInt64,
        event_time DateTime64(3, 'UTC'),
        order_id Nullable(UInt64),
        number Nullable(String),
        invoice_type Nullable(String),
        issued_at {_TIME},
        payment_method Nullable(String),
        sub_total {_MONEY},
        shipping_cost {_MONEY},
        cod_fee {_MONEY},
        discount {_MONEY},
        tax {_MONEY},
        tax_percent {_MONEY},
        total {_MONEY},
        currency Nullable(String),
        has_lines UInt8 DEFAULT 0,
        {_INVOICE_LINES},
        loaded_at DateTime64(3, 'UTC') DEFAULT now64(3)
    ) {_VERSION_ENGINE}
    ORDER BY (merchant_id, invoice_id, version)""",
    f"""CREATE TABLE IF NOT EXISTS {{db}}.invoices_current (
        merchant_id UInt64,
        invoice_id UInt64,
        {_SNAPSHOT},
        order_id Nullable(UInt64),
        number Nullable(String),
        invoice_type LowCardinality(Nullable(String)),
        issued_at {_TIME},
        payment_method LowCardinality(Nullable(String)),
        sub_total {_MONEY},
        shipping_cost {_MONEY},
        cod_fee {_MONEY},
        discount {_MONEY},
        tax {_MONEY},
        tax_percent {_MONEY},
        total {_MONEY},
        currency LowCardinality(Nullable(String)),
        updated_at DateTime64(3, 'UTC'),
        {_INVOICE_LINES}
    ) ENGINE = ReplacingMergeTree(versions, is_deleted)
    ORDER BY (merchant_id, invoice_id)
    SETTINGS {_SETTLED}""",
    f"""CREATE TABLE IF NOT EXISTS {{db}}.shipment_versions (
        merchant_id UInt64,
        shipment_id UInt64,
        version UInt64,
        event_time DateTime64(3, 'UTC'),
        order_id Nullable(UInt64),
        shipment_type Nullable(String),
        status Nullable(String),
        courier_id Nullable(UInt64),
        courier_name Nullable(String),
        tracking_number Nullable(String),
        shipping_cost {_MONEY},
        cod_amount {_MONEY},
        currency Nullable(String),
        is_international Nullable(UInt8),
        created_at {_TIME},
        shipped_at {_TIME},
        delivered_at {_TIME},
        loaded_at DateTime64(3, 'UTC') DEFAULT now64(3)
    ) {_VERSION_ENGINE}
    ORDER BY (merchant_id, shipment_id, version)""",
    f"""CREATE TABLE IF NOT EXISTS {{db}}.shipments_current (
        merchant_id UInt64,
        shipment_id UInt64,
        {_SNAPSHOT},
        order_id Nullable(UInt64),
        shipment_type LowCardinality(Nullable(String)),
        status LowCardinality(Nullable(String)),
        courier_id Nullable(UInt64),
        courier_name Nullable(String),
        tracking_number Nullable(String),
        shipping_cost {_MONEY},
        cod_amount {_MONEY},
        currency LowCardinality(Nullable(String)),
        is_international Nullable(UInt8),
        created_at {_TIME},
        shipped_at {_TIME},
        delivered_at {_TIME},
        updated_at DateTime64(3, 'UTC')
    ) ENGINE = ReplacingMergeTree(versions, is_deleted)
    ORDER BY (merchant_id, shipment_id)
    SETTINGS {_SETTLED}""",
    f"""CREATE TABLE IF NOT EXISTS {{db}}.review_versions (
        merchant_id UInt64,
        review_id UInt64,
        version UInt64,
        event_time DateTime64(3, 'UTC'),
        review_type Nullable(String),
        product_id Nullable(UInt64),
        order_id Nullable(UInt64),
        rating Nullable(UInt8),
        content Nullable(String),
        content_withheld Nullable(UInt8),
        created_at {_TIME},
        loaded_at DateTime64(3, 'UTC') DEFAULT now64(3)
    ) {_VERSION_ENGINE}
    ORDER BY (merchant_id, review_id, version)""",
    f"""CREATE TABLE IF NOT EXISTS {{db}}.product_reviews_current (
        merchant_id UInt64,
        review_id UInt64,
        {_SNAPSHOT},
        review_type LowCardinality(Nullable(String)),
        product_id Nullable(UInt64),
        order_id Nullable(UInt64),
        rating Nullable(UInt8),
        content Nullable(String),
        content_withheld Nullable(UInt8),
        created_at {_TIME},
        updated_at DateTime64(3, 'UTC')
    ) ENGINE = ReplacingMergeTree(versions, is_deleted)
    ORDER BY (merchant_id, review_id)
    SETTINGS {_SETTLED}""",
)
_FINAL_ONLY = "FINAL SETTINGS do_not_merge_across_partitions_select_final = 1"
_ANALYTICS_VIEWS = (
    f"""CREATE OR REPLACE VIEW {{db}}.orders AS
    SELECT merchant_id, order_id, reference_id, status, status_name, total, sub_total,
        shipping_cost, tax, discount, cod_fee, coupon_code, ifNull(is_draft, 0) AS is_draft,
        currency, payment_method, customer_id, city, country, source, created_at, updated_at
    FROM {{db}}.orders_current {_FINAL}""",
    """CREATE OR REPLACE VIEW {db}.sales_facts AS
    SELECT
        merchant_id,
        order_id,
        items.item_id AS item_id,
        items.product_id AS product_id,
        items.sku AS sku,
        items.name AS name,
        items.quantity AS quantity,
        items.unit_price AS unit_price,
        items.discount AS discount,
        items.tax AS tax,
        items.line_total AS line_total,
        ifNull(items.currency, currency) AS currency,
        CAST(arrayZip(items.option_names, items.option_values, items.option_prices),
            'Array(Tuple(name String, value String, price Decimal(18, 4)))') AS options,
        items.variant_key AS variant_key,
        status AS order_status,
        created_at AS order_created_at
    FROM {db}.orders_current FINAL
    ARRAY JOIN items
    WHERE is_deleted = 0 AND ifNull(is_draft, 0) = 0
    SETTINGS do_not_merge_across_partitions_select_final = 1""",
    # Salla sends 0 for "no sale"; a sale whose end has passed is no sale either.
    f"""CREATE OR REPLACE VIEW {{db}}.products AS
    SELECT merchant_id, product_id, name, description, sku, price,
        if(sale_price = 0 OR sale_ends_at <= now64(3), NULL, sale_price) AS sale_price,
        if(sale_price = 0, NULL, sale_ends_at) AS sale_ends_at,
        cost_price, currency, status, product_type, quantity, category, updated_at
    FROM {{db}}.products_current {_FINAL}""",
    f"""CREATE OR REPLACE VIEW {{db}}.customers AS
    SELECT merchant_id, customer_id, city, country, country_code, currency, created_at,
        updated_at
    FROM {{db}}.customers_current {_FINAL}""",
    f"""CREATE OR REPLACE VIEW {{db}}.abandoned_carts AS
    SELECT merchant_id, cart_id, customer_id, ifNull(status, 'active') AS status, total,
        subtotal, discount, currency, item_count, coupon_code, checkout_url,
        recovered_order_id, recovered_at, created_at, updated_at
    FROM {{db}}.abandoned_carts_current {_FINAL}""",
    """CREATE OR REPLACE VIEW {db}.abandoned_cart_items AS
    SELECT merchant_id, cart_id, items.product_id AS product_id, items.quantity AS quantity,
        items.unit_price AS unit_price, items.line_total AS line_total,
        ifNull(status, 'active') AS cart_status, created_at AS cart_created_at
    FROM {db}.abandoned_carts_current FINAL
    ARRAY JOIN items
    WHERE is_deleted = 0
    SETTINGS do_not_merge_across_partitions_select_final = 1""",
    f"""CREATE OR REPLACE VIEW {{db}}.invoices AS
    SELECT merchant_id, invoice_id, order_id, number, invoice_type, issued_at, payment_method,
        sub_total, shipping_cost, cod_fee, discount, tax, tax_percent, total, currency,
        updated_at
    FROM {{db}}.invoices_current {_FINAL}""",
    """CREATE OR REPLACE VIEW {db}.invoice_lines AS
    SELECT merchant_id, invoice_id, order_id, issued_at, lines.item_id AS item_id,
        lines.product_id AS product_id, lines.sku AS sku, lines.name AS name,
        lines.quantity AS quantity, lines.unit_price AS unit_price, lines.tax AS tax,
        lines.tax_percent AS tax_percent, lines.total AS total, currency
    FROM {db}.invoices_current FINAL
    ARRAY JOIN lines
    WHERE is_deleted = 0
    SETTINGS do_not_merge_across_partitions_select_final = 1""",
    f"""CREATE OR REPLACE VIEW {{db}}.shipments AS
    SELECT merchant_id, shipment_id, order_id, shipment_type, status, courier_id, courier_name,
        tracking_number, shipping_cost, cod_amount, currency, is_international, created_at,
        shipped_at, delivered_at, updated_at
    FROM {{db}}.shipments_current {_FINAL}""",
    f"""CREATE OR REPLACE VIEW {{db}}.product_reviews AS
    SELECT merchant_id, review_id, product_id, order_id, review_type, rating, content,
        content_withheld, created_at
    FROM {{db}}.product_reviews_current {_FINAL}""",
)

MIGRATIONS += (
    Migration(
        5,
        "merchant analytics model: cart recovery, cost and sale ends, options and variants, "
        "sign-up time, COD fee, coupons and drafts, invoices, shipments, reviews",
        (
            *(
                f"ALTER TABLE {{db}}.{table} "
                + ", ".join(f"ADD COLUMN IF NOT EXISTS {column}" for column in columns)
                for table, columns in _ADDITIONS.items()
            ),
            *_NEW_TABLES,
            # Only customers gain a derived field from versions already stored (first seen):
            # recompute them; the other tables' new fields start empty, as their versions are.
            # As migration 5 had it (before cleared fields and body keys):
            full_refresh(replace(CUSTOMERS, clearable=(), version_key=("version",)), "{db}"),
            *_ANALYTICS_VIEWS,
        ),
    ),
)
MIGRATIONS += (
    Migration(
        6,
        "fields a payload cleared (set to null or emptied) are told apart from fields it did "
        "not carry",
        tuple(
            f"ALTER TABLE {{db}}.{table} "
            "ADD COLUMN IF NOT EXISTS cleared Array(LowCardinality(String)) DEFAULT []"
            for table in (
                "order_versions",
                "product_versions",
                "customer_versions",
                "abandoned_cart_versions",
            )
        ),
    ),
)
MIGRATIONS += (
    Migration(
        7,
        "invoices, shipments and reviews tell cleared fields apart from absent ones too",
        tuple(
            f"ALTER TABLE {{db}}.{table} "
            "ADD COLUMN IF NOT EXISTS cleared Array(LowCardinality(String)) DEFAULT []"
            for table in ("invoice_versions", "shipment_versions", "review_versions")
        ),
    ),
)
_VERSION_TABLES = {
    "order_versions": "order_id",
    "product_versions": "product_id",
    "customer_versions": "customer_id",
    "abandoned_cart_versions": "cart_id",
    "invoice_versions": "invoice_id",
    "shipment_versions": "shipment_id",
    "review_versions": "review_id",
}
MIGRATIONS += (
    Migration(
        8,
        "two distinct bodies of one version are both kept: the body's key joins each versions "
        "table's sorting key (metadata only; rows stored before carry 0)",
        tuple(
            # ClickHouse appends a column to a sorting key only in the ALTER that adds it
            # (without a default expression): no table is rewritten. Re-running it is a no-op.
            f"ALTER TABLE {{db}}.{table} ADD COLUMN IF NOT EXISTS body_key UInt64, "
            f"MODIFY ORDER BY (merchant_id, {key}, version, body_key)"
            for table, key in _VERSION_TABLES.items()
        ),
    ),
)
MIGRATIONS += (
    Migration(
        9,
        "order lines as rows of their own behind sales_facts (kept by a materialized view of "
        "the orders' snapshots), instead of the items of each order row",
        (
            f"""CREATE TABLE IF NOT EXISTS {{db}}.order_lines_current (
                merchant_id UInt64,
                order_id UInt64,
                line UInt32,
                versions UInt32,
                is_deleted UInt8,
                item_id UInt64,
                product_id Nullable(UInt64),
                sku String,
                name String,
                quantity Decimal(18, 4),
                unit_price Decimal(18, 4),
                discount Decimal(18, 4),
                tax Decimal(18, 4),
                line_total Decimal(18, 4),
                currency LowCardinality(Nullable(String)),
                option_names Array(String),
                option_values Array(String),
                option_prices Array(Decimal(18, 4)),
                variant_key String,
                order_status LowCardinality(Nullable(String)),
                is_draft UInt8,
                order_created_at {_TIME},
                INDEX order_created_at_minmax order_created_at TYPE minmax GRANULARITY 1
            ) ENGINE = ReplacingMergeTree(versions, is_deleted)
            PARTITION BY toYear(order_created_at)
            ORDER BY (merchant_id, order_id, line)
            SETTINGS {_SETTLED}""",
            # What a loader of the version before writes (it names no `max_lines`) until the
            # functions are updated: its snapshot's own lines, and for its tombstone of the
            # partition an order left, more positions than an order has, so that no line of
            # the order stays in that partition (the new version's rows always name it).
            "ALTER TABLE {db}.orders_current ADD COLUMN IF NOT EXISTS max_lines UInt32 "
            "DEFAULT if(version = 0, 1000, length(items.item_id))",
            # First the view, then the copy: a snapshot a loader inserts meanwhile writes its own
            # lines (more versions than the copy's, so the copy cannot override them).
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.order_lines_of_snapshots "
            "TO {db}.order_lines_current AS " + order_lines_select("{db}"),
            "INSERT INTO {db}.order_lines_current " + order_lines_select("{db}", current=True),
            """CREATE OR REPLACE VIEW {db}.sales_facts AS
            SELECT merchant_id, order_id, item_id, product_id, sku, name, quantity, unit_price,
                discount, tax, line_total, currency,
                CAST(arrayZip(option_names, option_values, option_prices),
                    'Array(Tuple(name String, value String, price Decimal(18, 4)))') AS options,
                variant_key, order_status, order_created_at
            FROM {db}.order_lines_current FINAL WHERE is_deleted = 0 AND is_draft = 0
            SETTINGS do_not_merge_across_partitions_select_final = 1""",
        ),
    ),
)
# Tables the application's read-only user may SELECT: the contract views, never the raw archive.
READ_CONTRACT = (
    "orders",
    "sales_facts",
    "products",
    "customers",
    "abandoned_carts",
    "abandoned_cart_items",
    "invoices",
    "invoice_lines",
    "shipments",
    "product_reviews",
)
