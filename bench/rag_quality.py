"""Retrieval quality of the RAG search with the real local model on a realistic catalogue.

The catalogue: 150 products of a Saudi specialty store (coffee, dates, honey, oud and incense,
spices, perfume, coffee ware, textiles), Arabic or English names with bilingual descriptions,
in families of near-identical variants (origin, roast, size), which is what makes store search
hard. Every document goes through the production path: `product_document` → the `openai`
client → the local OpenAI-compatible server (multilingual-e5-small) → the vector index → the
hybrid `RagSearch` (vector candidates + exact name/SKU lookups + re-ranking).

Three query sets, each with its relevant products known from the catalogue itself:
- name: a product's full name as a customer types it (other script casing, extra spaces);
- partial: a family without its variant ("عسل سدر", "Ajwa dates");
- descriptive: a need in other words than the names ("something to perfume the majlis").
Reported per set: hit@1 (a relevant product first), recall@5 (relevant products in the top 5,
over min(5, |relevant|)) and MRR.

Differs from production: Pinecone's ANN index instead of exact cosine distance in chDB (exact
search is the upper bound of ANN recall), and e5-small instead of the production embedding
model (text-embedding-3-small by default), so these are a floor for the model, not the index.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from data_pipeline.adapters.clickhouse_vectors import ClickHouseVectorIndex
from data_pipeline.adapters.clickhouse_warehouse import ClickHouseWarehouse
from data_pipeline.adapters.vector_index import VectorRecord
from data_pipeline.domain.rag import product_document
from data_pipeline.service_layer.rag import RagSearch

from bench.rag import local_embedder
from tests.support.embeddings import embeddings_server

MERCHANT = 77


@dataclass(frozen=True)
class Family:
    key: str
    arabic: str
    english: str
    category: str
    description: str  # bilingual
    variants: tuple[tuple[str, str], ...]  # (arabic suffix, english suffix)
    price: Decimal


SIZES_COFFEE = (("250 جرام", "250g"), ("500 جرام", "500g"), ("1 كيلو", "1kg"))
FAMILIES = (
    Family(
        "coffee-arabic",
        "قهوة عربية",
        "Arabic Coffee",
        "القهوة",
        "بن عربي محمص مع الهيل للقهوة السعودية — Saudi coffee beans, light roast, with cardamom",
        (*SIZES_COFFEE, ("شقراء 500 جرام", "Light Roast 500g")),
        Decimal("45"),
    ),
    Family(
        "coffee-ethiopian",
        "قهوة إثيوبية",
        "Ethiopian Coffee",
        "القهوة",
        "حبوب قهوة مختصة من يرغاتشيفي للتقطير — "
        "specialty single origin beans for pour over and V60",
        SIZES_COFFEE,
        Decimal("70"),
    ),
    Family(
        "coffee-colombian",
        "قهوة كولومبية",
        "Colombian Coffee",
        "القهوة",
        "قهوة مختصة كولومبية للإسبريسو — specialty espresso beans, chocolate notes",
        SIZES_COFFEE,
        Decimal("65"),
    ),
    Family(
        "dates-sukkari",
        "تمر سكري",
        "Sukkari Dates",
        "التمور",
        "تمر سكري فاخر من القصيم، طري وحلو — premium soft sweet dates from Qassim",
        (
            ("500 جرام", "500g"),
            ("1 كيلو", "1kg"),
            ("3 كيلو", "3kg"),
            ("مفتل 1 كيلو", "Mufattal 1kg"),
        ),
        Decimal("40"),
    ),
    Family(
        "dates-ajwa",
        "تمر عجوة",
        "Ajwa Dates",
        "التمور",
        "عجوة المدينة المنورة — Ajwa dates from Madinah, dark and soft",
        (("500 جرام", "500g"), ("1 كيلو", "1kg"), ("علبة هدية", "Gift Box")),
        Decimal("90"),
    ),
    Family(
        "dates-khalas",
        "تمر خلاص",
        "Khalas Dates",
        "التمور",
        "تمر خلاص الأحساء — Khalas dates from Al-Ahsa, caramel taste",
        (("1 كيلو", "1kg"), ("3 كيلو", "3kg")),
        Decimal("35"),
    ),
    Family(
        "honey-sidr",
        "عسل سدر",
        "Sidr Honey",
        "العسل",
        "عسل سدر جبلي طبيعي 100% — pure natural mountain Sidr honey",
        (
            ("250 جرام", "250g"),
            ("500 جرام", "500g"),
            ("1 كيلو", "1kg"),
            ("يمني 500 جرام", "Yemeni 500g"),
        ),
        Decimal("120"),
    ),
    Family(
        "honey-talh",
        "عسل طلح",
        "Talh Honey",
        "العسل",
        "عسل طلح بري — wild acacia Talh honey",
        (("500 جرام", "500g"), ("1 كيلو", "1kg")),
        Decimal("95"),
    ),
    Family(
        "honey-samar",
        "عسل سمر",
        "Samar Honey",
        "العسل",
        "عسل سمر داكن قوي الطعم — dark, strong Samar honey",
        (("500 جرام", "500g"), ("1 كيلو", "1kg")),
        Decimal("110"),
    ),
    Family(
        "oud-incense",
        "بخور عود",
        "Oud Incense",
        "العود والبخور",
        "عود للتبخير يعطر المجلس والبيت — agarwood chips to burn, perfumes the majlis and home",
        (("كمبودي", "Cambodian"), ("هندي", "Indian"), ("ماليزي", "Malaysian"), ("معمول", "Mamoul")),
        Decimal("220"),
    ),
    Family(
        "oud-oil",
        "دهن عود",
        "Oud Oil",
        "العود والبخور",
        "دهن عود أصلي مركز — concentrated pure oud perfume oil",
        (("3 مل", "3ml"), ("6 مل", "6ml"), ("12 مل", "12ml")),
        Decimal("300"),
    ),
    Family(
        "bakhoor",
        "مبخرة",
        "Incense Burner",
        "العود والبخور",
        "مبخرة لحرق البخور والعود — burner for bakhoor and oud",
        (("كهربائية", "Electric"), ("نحاسية", "Brass"), ("خشبية", "Wooden")),
        Decimal("80"),
    ),
    Family(
        "saffron",
        "زعفران",
        "Saffron",
        "البهارات",
        "زعفران نقي للقهوة والأرز — pure saffron threads for coffee and rice",
        (
            ("إيراني 1 جرام", "Persian 1g"),
            ("إيراني 5 جرام", "Persian 5g"),
            ("إسباني 2 جرام", "Spanish 2g"),
        ),
        Decimal("39"),
    ),
    Family(
        "cardamom",
        "هيل",
        "Cardamom",
        "البهارات",
        "هيل أخضر حب كامل للقهوة العربية — whole green cardamom pods for Arabic coffee",
        (("100 جرام", "100g"), ("250 جرام", "250g"), ("مطحون 100 جرام", "Ground 100g")),
        Decimal("32"),
    ),
    Family(
        "spice-kabsa",
        "بهارات كبسة",
        "Kabsa Spice Mix",
        "البهارات",
        "خلطة بهارات الكبسة السعودية — Saudi kabsa rice spice blend",
        (("200 جرام", "200g"), ("500 جرام", "500g")),
        Decimal("18"),
    ),
    Family(
        "musk",
        "عطر مسك",
        "Musk Perfume",
        "العطور",
        "مسك أبيض ناعم يدوم طويلاً — soft long lasting white musk",
        (("الطهارة", "Tahara"), ("أبيض 50 مل", "White 50ml"), ("بودرة", "Powder")),
        Decimal("58"),
    ),
    Family(
        "perfume-rose",
        "عطر ورد طائفي",
        "Taif Rose Perfume",
        "العطور",
        "عطر من ورد الطائف — perfume distilled from Taif roses",
        (("30 مل", "30ml"), ("100 مل", "100ml")),
        Decimal("150"),
    ),
    Family(
        "dallah",
        "دلة قهوة",
        "Coffee Dallah",
        "أدوات القهوة",
        "دلة لتقديم القهوة العربية — pot for serving Arabic coffee, a classic gift",
        (("نحاسية", "Copper"), ("ستانلس", "Steel"), ("مذهبة", "Gold Plated")),
        Decimal("149"),
    ),
    Family(
        "cups",
        "طقم فناجين",
        "Coffee Cups Set",
        "أدوات القهوة",
        "فناجين تقديم القهوة العربية — small cups for serving Arabic coffee to guests",
        (("6 قطع", "of 6"), ("12 قطعة", "of 12"), ("مذهب 6 قطع", "Gold of 6")),
        Decimal("75"),
    ),
    Family(
        "thermos",
        "ترمس",
        "Thermos Flask",
        "أدوات القهوة",
        "ترمس يحفظ القهوة والشاي حارة — keeps coffee and tea hot for hours",
        (("1 لتر", "1L"), ("1.5 لتر", "1.5L")),
        Decimal("85"),
    ),
    Family(
        "grinder",
        "مطحنة قهوة",
        "Coffee Grinder",
        "أدوات القهوة",
        "مطحنة لطحن حبوب القهوة — burr grinder for coffee beans",
        (("يدوية", "Manual"), ("كهربائية", "Electric")),
        Decimal("199"),
    ),
    Family(
        "shemagh",
        "شماغ",
        "Shemagh",
        "الملابس",
        "شماغ قطن للرجال — men's cotton headscarf",
        (("أحمر", "Red"), ("أبيض", "White"), ("شتوي", "Winter")),
        Decimal("95"),
    ),
    Family(
        "thobe",
        "ثوب رجالي",
        "Men's Thobe",
        "الملابس",
        "ثوب سعودي رجالي — Saudi men's thobe",
        (("صيفي أبيض", "Summer White"), ("شتوي", "Winter")),
        Decimal("180"),
    ),
    Family(
        "prayer-rug",
        "سجادة صلاة",
        "Prayer Rug",
        "المنزل",
        "سجادة للصلاة ناعمة — soft mat for prayer",
        (("مخملية", "Velvet"), ("للسفر", "Travel"), ("طبية", "Orthopedic")),
        Decimal("120"),
    ),
    Family(
        "tea",
        "شاي",
        "Tea",
        "الشاي",
        "شاي للضيافة — tea for guests",
        (("أحمر 500 جرام", "Black 500g"), ("أخضر بالنعناع", "Green Mint"), ("كرك", "Karak")),
        Decimal("25"),
    ),
)

# A family's products are relevant to its partial queries; descriptive needs list families.
PARTIAL_QUERIES = {
    "عسل سدر": ["honey-sidr"],
    "Ajwa dates": ["dates-ajwa"],
    "قهوة اثيوبيه": ["coffee-ethiopian"],
    "oud oil": ["oud-oil"],
    "زعفران": ["saffron"],
    "dallah": ["dallah"],
    "تمر سكري": ["dates-sukkari"],
    "Incense burner": ["bakhoor"],
    "شماغ": ["shemagh"],
    "cardamom": ["cardamom"],
}
DESCRIPTIVE_QUERIES = {
    "شي أبخر فيه المجلس": ["oud-incense", "bakhoor"],
    "something to make the house smell nice": [
        "oud-incense",
        "bakhoor",
        "oud-oil",
        "musk",
        "perfume-rose",
    ],
    "هدية لمحب القهوة": [
        "dallah",
        "cups",
        "grinder",
        "thermos",
        "coffee-arabic",
        "coffee-ethiopian",
        "coffee-colombian",
    ],
    "beans for my V60": ["coffee-ethiopian", "coffee-colombian"],
    "عسل طبيعي": ["honey-sidr", "honey-talh", "honey-samar"],
    "sweet dates for Ramadan": ["dates-sukkari", "dates-ajwa", "dates-khalas"],
    "keep tea hot": ["thermos"],
    "spices for rice": ["spice-kabsa", "saffron"],
    "ما ألبس للصلاة أو العيد": ["thobe", "shemagh", "prayer-rug"],
    "Arabic coffee with cardamom": ["coffee-arabic", "cardamom"],
    # No word in common with the names or descriptions: the model has to know what is meant.
    "أبي شي يصحيني الصبح": ["coffee-arabic", "coffee-ethiopian", "coffee-colombian", "tea"],
    "natural sweetener": ["honey-sidr", "honey-talh", "honey-samar", "dates-sukkari"],
    "something warm for winter": ["thobe", "shemagh"],
    "ضيافة الضيوف": ["cups", "dallah", "coffee-arabic", "dates-sukkari", "tea"],
}


def catalogue() -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    rows, members = [], {}
    for family in FAMILIES:
        for index, (arabic_suffix, english_suffix) in enumerate(family.variants):
            product_id = len(rows) + 1
            arabic = index % 2 == 0
            name = (
                f"{family.arabic} {arabic_suffix}"
                if arabic
                else f"{family.english} {english_suffix}"
            )
            rows.append(
                {
                    "product_id": product_id,
                    "name": name,
                    "description": family.description,
                    "sku": f"{family.key.upper()}-{index + 1}",
                    "price": family.price + 10 * index,
                    "currency": "SAR",
                    "status": "sale",
                    "category": family.category,
                }
            )
            members.setdefault(family.key, []).append(f"product:{product_id}")
    # Repeat the families in a second colour/size range so the catalogue has 150 products with
    # many near-identical names, as real stores do.
    for row in list(rows):
        if len(rows) >= 150:
            break
        twin = {
            **row,
            "product_id": len(rows) + 1,
            "name": row["name"] + " - عرض",
            "sku": row["sku"] + "-B",
        }
        rows.append(twin)
        family = next(k for k, ids in members.items() if f"product:{row['product_id']}" in ids)
        members[family].append(f"product:{twin['product_id']}")
    return rows, members


def _scores(ranked: list[list[str]], relevant: list[set[str]]) -> dict[str, float]:
    hits, recall, reciprocal = 0, 0.0, 0.0
    for got, wanted in zip(ranked, relevant, strict=True):
        hits += bool(got) and got[0] in wanted
        recall += len(set(got[:5]) & wanted) / min(5, len(wanted))
        rank = next((i for i, doc in enumerate(got) if doc in wanted), None)
        reciprocal += 1 / (rank + 1) if rank is not None else 0.0
    n = len(ranked)
    return {
        "queries": n,
        "hit@1": round(hits / n, 3),
        "recall@5": round(recall / n, 3),
        "mrr": round(reciprocal / n, 3),
    }


async def _measure(work: Path) -> dict[str, Any]:
    rows, members = catalogue()
    warehouse = ClickHouseWarehouse(f"chdb://{work / 'clickhouse'}", "bench_rag_quality")
    warehouse.migrate()
    index = ClickHouseVectorIndex(warehouse)
    namespace = f"merchant-{MERCHANT}"
    async with embeddings_server() as (server, _):
        embedder = local_embedder(server.url)
        documents = [product_document(row) for row in rows]
        vectors = await embedder.embed([d.text for d in documents], "passage")
        await index.upsert(
            namespace,
            [
                VectorRecord(d.doc_id, v, d.stored_metadata())
                for d, v in zip(documents, vectors, strict=True)
            ],
        )
        search = RagSearch(embedder=embedder, index=index)

        async def ranked(query: str) -> list[str]:
            return [m.doc_id for m in await search.search(MERCHANT, query, 5)]

        async def by_vector(query: str) -> list[str]:
            """The model alone: nearest neighbours, no exact name/SKU lookup, no re-ranking."""
            (vector,) = await embedder.embed([query], "query")
            return [m.doc_id for m in await index.query(namespace, vector, 5)]

        # Names as typed: the English ones lower-cased, extra spaces; one of each product.
        names = [
            (row["name"].lower().replace(" ", "  ", 1), f"product:{row['product_id']}")
            for row in rows
        ]
        sets = {
            "name": ([q for q, _ in names], [{doc} for _, doc in names]),
            "partial_name": (
                list(PARTIAL_QUERIES),
                [{d for f in fams for d in members[f]} for fams in PARTIAL_QUERIES.values()],
            ),
            "descriptive": (
                list(DESCRIPTIVE_QUERIES),
                [{d for f in fams for d in members[f]} for fams in DESCRIPTIVE_QUERIES.values()],
            ),
        }
        scores: dict[str, Any] = {}
        for name, (queries, relevant) in sets.items():
            scores[name] = {
                "hybrid": _scores([await ranked(q) for q in queries], relevant),
                "vector_only": _scores([await by_vector(q) for q in queries], relevant),
            }
        await embedder.aclose()
    warehouse.close()
    return {"products": len(rows), **scores}


def measure() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-rag-quality-") as tmp:
        return asyncio.run(_measure(Path(tmp)))


def report(result: dict[str, Any]) -> str:
    title = f"multilingual-e5-small, {result['products']} products, hybrid search"
    lines = [f"RAG retrieval quality ({title})"]
    for name in ("name", "partial_name", "descriptive"):
        for ranking in ("hybrid", "vector_only"):
            s = result[name][ranking]
            lines.append(
                f"  {name:<13} {ranking:<12} {s['queries']:>4} queries  hit@1 {s['hit@1']:.2f}  "
                f"recall@5 {s['recall@5']:.2f}  MRR {s['mrr']:.2f}"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    outcome = measure()
    print(report(outcome))
    print(json.dumps(outcome))
