"""The domain core compiled with mypyc, for the bulk import's workers: same source, C speed.

`python -m data_pipeline.devtools.compile_domain` (run by `make venv` and whenever a domain
module changes) compiles `data_pipeline/domain` with mypyc into `domain/_mypyc/` with a manifest
of the sources it was built from. `use_compiled_domain()` puts that directory first on the
domain package's search path, so `data_pipeline.domain.orders` imports as the compiled module,
but only when every source still matches the manifest: a build older than an edit is never
used, the pure-Python modules are. The webhook path, the Lambda bundle and the test suite's own
process run the pure-Python domain; the compiled one is tested by running the domain's and the
convergence tests against it (tests/integration/test_compiled_domain.py).

Not compiled: `__init__` and `records` (mypyc cannot compile `dataclass_transform`'s
decorator); compiled modules use the pure-Python `records` and `errors` as Python modules.
"""

from __future__ import annotations

import hashlib
import json
import sys
import sysconfig
from pathlib import Path

DOMAIN_DIR = Path(__file__).resolve().parent / "domain"
BUILD_DIR = DOMAIN_DIR / "_mypyc"  # not in git, not in the Lambda bundle
MANIFEST = "manifest.json"
PURE_MODULES = frozenset({"__init__", "records"})
# The compiled modules' shared library: `data_pipeline.domain._mypyc__mypyc`, found (like the
# modules) on the domain package's path.
GROUP_NAME = "data_pipeline.domain._mypyc"


def compiled_sources(domain_dir: Path = DOMAIN_DIR) -> dict[str, str]:
    """The domain modules to compile, by name, with the SHA-256 of their source."""
    return {
        path.stem: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(domain_dir.glob("*.py"))
        if path.stem not in PURE_MODULES
    }


def stale_reason(build_dir: Path | None = None, domain_dir: Path = DOMAIN_DIR) -> str | None:
    """Why the build in `build_dir` (default `BUILD_DIR`) cannot be used for these sources
    (None: it can)."""
    build_dir = build_dir or BUILD_DIR
    try:
        manifest = json.loads((build_dir / MANIFEST).read_text())
    except FileNotFoundError:
        return "not built (run `make compiled-domain`)"
    except (OSError, ValueError) as error:
        return f"unreadable manifest: {error}"
    if not isinstance(manifest, dict) or manifest.get("ext_suffix") != ext_suffix():
        return "built for another Python"
    sources = compiled_sources(domain_dir)
    built = manifest.get("sources")
    if built != sources:
        changed = sorted(set(sources.items()) ^ set((built or {}).items()))
        names = sorted({name for name, _ in changed})
        return f"older than the source of {', '.join(names)} (run `make compiled-domain`)"
    names = [*sources, GROUP_NAME.rsplit(".", 1)[1] + "__mypyc"]
    missing = [name for name in names if not (build_dir / f"{name}{ext_suffix()}").exists()]
    if missing:
        return f"incomplete: no {', '.join(missing)}"
    return None


def use_compiled_domain(build_dir: Path | None = None) -> str | None:
    """Has this process import the compiled domain (`build_dir`, default `BUILD_DIR`); returns
    why not (None: it will).

    Must run before any domain module is imported: a module already imported stays as it is."""
    build_dir = build_dir or BUILD_DIR
    domain = sys.modules.get("data_pipeline.domain")
    if str(build_dir) in getattr(domain, "__path__", ()):
        return None
    imported = [name for name in sys.modules if name.startswith("data_pipeline.domain.")]
    if imported:
        return f"the domain is already imported ({imported[0]})"
    reason = stale_reason(build_dir)
    if reason is not None:
        return reason
    import data_pipeline.domain

    data_pipeline.domain.__path__.insert(0, str(build_dir))
    return None


def build_in_use() -> Path | None:
    """The compiled build this process imports its domain modules from, if any."""
    domain = sys.modules.get("data_pipeline.domain")
    builds = [Path(entry) for entry in getattr(domain, "__path__", ()) if entry != str(DOMAIN_DIR)]
    return builds[0] if builds else None


def in_use() -> bool:
    """Whether this process imports its domain modules from a compiled build."""
    return build_in_use() is not None


def ext_suffix() -> str:
    """The file suffix of this interpreter's extension modules (a build is only good for it)."""
    return str(sysconfig.get_config_var("EXT_SUFFIX"))
