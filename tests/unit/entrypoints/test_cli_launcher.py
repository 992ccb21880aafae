"""The command line's launcher: worker processes a command spawns (a bulk import's) import the
script that started it again, so what the script imports must not load the commands."""

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

HEAVY = ("typer", "fastapi", "qstash", "data_pipeline.entrypoints.cli.main")


def test_the_script_imports_no_command():
    (script,) = entry_points(group="console_scripts", name="salla-pipeline")
    check = (
        f"import sys, {script.module}\n"
        f"loaded = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "assert not loaded, f'the launcher loads {loaded}'\n"
    )
    subprocess.run([sys.executable, "-c", check], check=True)


def test_the_launcher_runs_the_commands():
    for command in (
        [sys.executable, "-m", "data_pipeline.entrypoints.cli", "--help"],
        [str(Path(sys.executable).parent / "salla-pipeline"), "--help"],
    ):
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        assert "import-events" in result.stdout


def test_loading_the_commands_leaves_what_only_some_commands_use_unloaded():
    # Every command pays for what the command line imports to start (0.53 -> 0.33 s for --help
    # once these moved into the commands that use them).
    unused = ("qstash", "pydantic_settings", "shared.contract", "httpx")
    check = (
        "import sys, data_pipeline.entrypoints.cli.main\n"
        f"loaded = sorted(m for m in {unused!r} if m in sys.modules)\n"
        "assert not loaded, f'loading the commands imports {loaded}'\n"
    )
    subprocess.run([sys.executable, "-c", check], check=True)


def test_a_direct_import_loads_none_of_the_webhook_path_or_the_settings_contract():
    # What `import-events` into a data dir imports before its first batch is on its critical
    # path (0.77 -> 0.59 s of imports once these stayed out).
    unused = ("structlog", "pydantic_settings", "shared.contract", "httpx", "qstash")
    check = (
        "import sys, data_pipeline.entrypoints.cli.main\n"
        "from data_pipeline.adapters.clickhouse_warehouse import ClickHouseWarehouse\n"
        "from data_pipeline.adapters.sqlite_state import SqliteStateStore\n"
        "from data_pipeline.service_layer.importer import EventImporter\n"
        f"loaded = sorted(m for m in {unused!r} if m in sys.modules)\n"
        "assert not loaded, f'a direct import loads {loaded}'\n"
    )
    subprocess.run([sys.executable, "-c", check], check=True)


def test_an_import_worker_loads_only_what_preparing_batches_needs():
    # Each import spawns a worker per core while the command loads chDB; the webhook path's
    # service layer (RAG, logging, the state stores) cost each one ~0.4 s of CPU to import.
    webhook_path = (
        "data_pipeline.service_layer.processing",
        "data_pipeline.service_layer.rag",
        "data_pipeline.service_layer.ingest",
        "structlog",
        "chdb",
    )
    check = (
        "from data_pipeline.service_layer.importer import start_pool\n"
        "pool = start_pool(1)\n"
        "modules = pool.submit(eval, 'sorted(__import__(\"sys\").modules)').result()\n"
        "pool.shutdown()\n"
        f"loaded = sorted(m for m in {webhook_path!r} if m in modules)\n"
        "assert 'data_pipeline.service_layer.import_batches' in modules, 'not a worker'\n"
        "assert not loaded, f'an import worker loads {loaded}'\n"
    )
    subprocess.run([sys.executable, "-c", check], check=True)
