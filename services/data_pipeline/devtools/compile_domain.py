"""Compiles the domain core with mypyc: `python -m data_pipeline.devtools.compile_domain`.

Writes `data_pipeline/domain/_mypyc/` (see data_pipeline/compiled_domain.py): one extension
module per domain module, their shared library and a manifest of the sources they came from.
Built in a temporary directory and moved into place whole, so an interrupted build leaves the
previous one (or none), never half of one. Needs mypy and setuptools (dev dependencies) and a C
compiler; ~30 s on two cores. Does nothing when the build is already current (`--force` builds
anyway).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from data_pipeline.compiled_domain import (
    BUILD_DIR,
    DOMAIN_DIR,
    GROUP_NAME,
    MANIFEST,
    compiled_sources,
    ext_suffix,
    stale_reason,
)

SERVICES_DIR = DOMAIN_DIR.parent.parent  # mypyc names modules by their path from here


def build(build_dir: Path = BUILD_DIR) -> Path:
    """Compiles the domain into `build_dir` (replaced); returns it."""
    from mypy.version import __version__ as mypy_version
    from mypyc.build import mypycify
    from setuptools import Distribution

    sources = compiled_sources()
    paths = [f"data_pipeline/domain/{name}.py" for name in sources]
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=build_dir.parent, prefix=".mypyc-") as tmp:
        work = Path(tmp)
        previous = Path.cwd()
        os.chdir(SERVICES_DIR)
        try:
            # mypy's cache in the build's own directory, not left in services/
            options = ["--cache-dir", str(work / "mypy-cache")]
            extensions = mypycify(
                [*options, *paths], group_name=GROUP_NAME, target_dir=str(work / "c")
            )
            dist = Distribution({"name": "data-pipeline-domain", "ext_modules": extensions})
            command = dist.get_command_obj("build_ext")
            command.build_lib = str(work / "lib")  # type: ignore[attr-defined]
            command.build_temp = str(work / "temp")  # type: ignore[attr-defined]
            command.parallel = os.cpu_count() or 1  # type: ignore[attr-defined]
            command.ensure_finalized()
            command.run()
        finally:
            os.chdir(previous)
        staged = work / "out"
        shutil.copytree(work / "lib" / "data_pipeline" / "domain", staged)
        manifest = {"ext_suffix": ext_suffix(), "mypy": mypy_version, "sources": sources}
        (staged / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        if build_dir.exists():
            shutil.rmtree(build_dir)
        staged.rename(build_dir)
    if compiled_sources() != sources:  # a domain module changed while this built
        raise SystemExit("a domain module changed during the build: run it again")
    return build_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="build even if current")
    args = parser.parse_args(argv)
    reason = stale_reason()
    if reason is None and not args.force:
        print(f"compiled domain is current: {BUILD_DIR}")
        return 0
    print(f"compiling the domain with mypyc ({reason or 'forced'}) ...", flush=True)
    build()
    reason = stale_reason()
    if reason is not None:
        print(f"the build is not usable: {reason}", file=sys.stderr)
        return 1
    print(f"compiled domain written to {BUILD_DIR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
