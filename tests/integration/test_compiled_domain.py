"""The domain compiled with mypyc (data_pipeline/compiled_domain.py): the same behaviour as the
Python domain, used only when built from exactly today's sources.

The rest of the suite runs the Python domain in its own process (as the webhook path and Lambda
do; `import-events` run as a command takes the compiled one when it is built). Here the domain's
own tests and the real-time path's convergence tests run again, in a fresh process that imports
the compiled modules, and one file is imported with and without it. The build is the one `make`
keeps current (built here when it is not: ~30 s).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from data_pipeline.compiled_domain import BUILD_DIR, MANIFEST, ext_suffix, stale_reason
from data_pipeline.devtools import compile_domain

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def build() -> Path:
    if stale_reason() is not None:
        assert compile_domain.main([]) == 0
    assert stale_reason() is None
    return BUILD_DIR


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=540,
        env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'services'}"},
    )


_IMPORTS_WITH = """
import sys
from pathlib import Path
from data_pipeline.compiled_domain import in_use, use_compiled_domain
print("REASON", use_compiled_domain(Path(sys.argv[1])))
from data_pipeline.domain import events, orders, records
print("IN_USE", in_use())
print("ORDERS", orders.__file__)
print("RECORDS", records.__file__)
"""


def _lines(output: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in output.splitlines() if " " in line)


def test_a_current_build_is_what_the_domain_imports(build: Path) -> None:
    seen = _lines(_python(_IMPORTS_WITH, str(build)).stdout)
    assert seen["REASON"] == "None"
    assert seen["IN_USE"] == "True"
    assert seen["ORDERS"].endswith(ext_suffix())
    assert seen["RECORDS"].endswith("records.py")  # not compiled: mypyc cannot


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (lambda m: m["sources"].update(orders="0" * 64), "older than the source of orders"),
        (lambda m: m["sources"].pop("money"), "older than the source of money"),
        (lambda m: m.update(ext_suffix=".cpython-399-x.so"), "built for another Python"),
    ],
    ids=["edited-source", "new-module", "other-python"],
)
def test_a_build_that_does_not_match_the_sources_is_not_used(
    build: Path, tmp_path: Path, spoil: object, reason: str
) -> None:
    copy = tmp_path / "_mypyc"
    shutil.copytree(build, copy)
    manifest = json.loads((copy / MANIFEST).read_text())
    spoil(manifest)  # type: ignore[operator]
    (copy / MANIFEST).write_text(json.dumps(manifest))
    assert reason in (stale_reason(copy) or "")
    seen = _lines(_python(_IMPORTS_WITH, str(copy)).stdout)
    assert reason in seen["REASON"]
    assert seen["IN_USE"] == "False"
    assert seen["ORDERS"].endswith("orders.py")


def test_no_build_or_a_cut_short_one_is_not_used(build: Path, tmp_path: Path) -> None:
    assert "not built" in (stale_reason(tmp_path / "absent") or "")
    copy = tmp_path / "_mypyc"
    shutil.copytree(build, copy)
    (copy / f"orders{ext_suffix()}").unlink()
    assert stale_reason(copy) == "incomplete: no orders"
    (copy / f"_mypyc__mypyc{ext_suffix()}").unlink()
    assert stale_reason(copy) == "incomplete: no orders, _mypyc__mypyc"


def test_once_the_domain_is_imported_it_stays_as_it_is(build: Path) -> None:
    code = (
        "import sys; from pathlib import Path\n"
        "import data_pipeline.domain.money\n"
        "from data_pipeline.compiled_domain import use_compiled_domain, in_use\n"
        "print('REASON', use_compiled_domain(Path(sys.argv[1]))); print('IN_USE', in_use())\n"
    )
    seen = _lines(_python(code, str(build)).stdout)
    assert seen["REASON"] == "the domain is already imported (data_pipeline.domain.money)"
    assert seen["IN_USE"] == "False"


def test_the_domain_and_convergence_tests_pass_against_the_compiled_domain(build: Path) -> None:
    code = (
        "import sys; from pathlib import Path\n"
        "from data_pipeline.compiled_domain import use_compiled_domain, in_use\n"
        "reason = use_compiled_domain(Path(sys.argv[1])); assert reason is None, reason\n"
        "import pytest\n"
        "status = pytest.main(['-q', '-p', 'no:cacheprovider', *sys.argv[2:]])\n"
        "print('IN_USE', in_use()); sys.exit(status)\n"
    )
    suites = ["tests/unit/domain", "tests/integration/test_convergence.py"]
    run = _python(code, str(build), *suites)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "IN_USE True" in run.stdout
    passed = int(run.stdout.rsplit(" passed", 1)[0].rsplit(" ", 1)[-1].split("\n")[-1])
    assert passed > 200, run.stdout[-500:]


def _import(
    tmp_path: Path, *flags: str, build_dir: Path | None = None
) -> subprocess.CompletedProcess[str]:
    from data_pipeline.devtools.salla_samples import StoreSimulation, encode

    store = StoreSimulation(merchant_id=8_000_003, seed=3)
    store.create_products()
    store.create_customers(5)
    for _ in range(40):
        store.create_order()
    tmp_path.mkdir()
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(encode(event) + b"\n" for event in store.events))
    code = (
        "import sys; from pathlib import Path; import data_pipeline.compiled_domain as compiled\n"
        "if sys.argv[1]: compiled.BUILD_DIR = Path(sys.argv[1])\n"
        "sys.argv = ['salla-pipeline', *sys.argv[2:]]\n"
        "from data_pipeline.entrypoints.cli import run; run()\n"
    )
    args = ["import-events", str(events), "--data-dir", str(tmp_path / "data"), *flags]
    return _python(code, str(build_dir or ""), *args)


def test_import_events_says_which_domain_transforms_and_both_load_the_same(
    build: Path, tmp_path: Path
) -> None:
    compiled = _import(tmp_path / "compiled", "--compiled", "--processes", "2")
    python = _import(tmp_path / "python", "--no-compiled", "--processes", "2")
    assert compiled.returncode == python.returncode == 0, compiled.stderr + python.stderr
    assert "transform: the compiled domain (mypyc)" in compiled.stdout
    assert "transform: the Python domain (--no-compiled)" in python.stdout
    summary = [out.stdout.strip().splitlines()[-1] for out in (compiled, python)]
    assert summary[0] == summary[1]
    assert " 0 failed" in summary[0]
    assert _contents(tmp_path / "compiled") == _contents(tmp_path / "python")


_DUMP = """
import sys
from data_pipeline.adapters.clickhouse_warehouse import ClickHouseWarehouse
warehouse = ClickHouseWarehouse(f"chdb://{sys.argv[1]}/data/clickhouse", "analytics")
stored = ("order_versions", "product_versions", "customer_versions")
for table in ("orders", "sales_facts", "products", "customers", *stored, "raw_events"):
    columns = "*"  # but the time each import loaded or received it
    if table in stored:
        columns = "* EXCEPT (loaded_at)"
    elif table == "raw_events":
        columns = "* EXCEPT (received_at)"
    rows = warehouse.query(f"SELECT {columns} FROM analytics.{table} ORDER BY ALL").rows
    print(table, len(rows), repr(rows))
warehouse.close()
"""


def _contents(run_dir: Path) -> list[str]:
    dump = _python(_DUMP, str(run_dir))
    assert dump.returncode == 0, dump.stderr[-2000:]
    tables = dump.stdout.splitlines()
    assert [int(line.split(" ")[1]) > 0 for line in tables] == [True] * 8, dump.stdout[:500]
    return tables


def test_import_events_runs_the_python_domain_when_the_build_is_stale_and_compiled_fails(
    build: Path, tmp_path: Path
) -> None:
    stale = tmp_path / "_mypyc"
    shutil.copytree(build, stale)
    manifest = json.loads((stale / MANIFEST).read_text())
    manifest["sources"]["orders"] = "0" * 64
    (stale / MANIFEST).write_text(json.dumps(manifest))
    python = _import(tmp_path / "auto", build_dir=stale)
    assert python.returncode == 0, python.stderr
    assert "transform: the Python domain (compiled one: older than the source of orders" in (
        " ".join(python.stdout.split())
    )
    assert " 0 failed" in python.stdout
    refused = _import(tmp_path / "refused", "--compiled", build_dir=stale)
    assert refused.returncode == 2
    assert "--compiled: the compiled domain cannot be used: older than the source of orders" in (
        " ".join(refused.stderr.split())
    )
    assert not (tmp_path / "refused" / "data").exists()  # refused before anything is touched
