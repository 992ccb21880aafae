"""The domain's records (domain/records.py): values, immutable to the type checker."""

import dataclasses
import pickle
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from data_pipeline.domain.model import MerchantAuthorized, OrderItem, OrderItemSet, OrderVersion

ROOT = Path(__file__).resolve().parents[3]


def item(**changes):
    fields = dict(
        item_id=1,
        product_id=2,
        sku="AC-250",
        name="قهوة",
        quantity=Decimal("2.0000"),
        unit_price=Decimal("45.0000"),
        discount=Decimal("0.0000"),
        tax=Decimal("13.5000"),
        line_total=Decimal("103.5000"),
        currency="SAR",
    )
    return OrderItem(**(fields | changes))


def test_records_are_values_compared_and_hashed_by_their_fields():
    assert item() == item() and hash(item()) == hash(item())
    assert item() != item(tax=Decimal("0.0000"))
    assert len({item(), item(), item(sku="other")}) == 2
    assert pickle.loads(pickle.dumps(item())) == item()  # noqa: S301 (our own bytes)
    assert dataclasses.replace(item(), sku="other") == item(sku="other")


def test_records_keep_no_instance_dict():
    version = OrderVersion(merchant_id=1, order_id=2, version=3, event_time=datetime.now(UTC))
    assert not hasattr(version, "__dict__")


def test_the_type_checker_rejects_assigning_to_a_record_field(tmp_path):
    snippet = tmp_path / "mutates.py"
    snippet.write_text(
        "from data_pipeline.domain.model import OrderItemSet\n"
        "items = OrderItemSet(merchant_id=1, order_id=2, version=3, items=())\n"
        "items.version = 4\n"
    )
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(snippet)],
        cwd=ROOT,
        env={"MYPYPATH": str(ROOT / "services"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert 'Property "version" defined in "OrderItemSet" is read-only' in checked.stdout


def test_an_item_set_holds_its_items_by_value():
    assert OrderItemSet(1, 2, 3, (item(),)) == OrderItemSet(1, 2, 3, (item(),))


def test_a_record_keeps_its_own_repr_so_tokens_stay_out_of_logs():
    authorized = MerchantAuthorized(
        merchant_id=1,
        version=2,
        access_token="ory_at_secret",
        refresh_token="ory_rt_secret",
        expires_at=None,
        scope="offline_access",
    )
    assert "secret" not in repr(authorized) and "secret" not in str(authorized)
    assert repr(authorized) == "MerchantAuthorized(merchant_id=1, version=2)"
