"""The raw archive's object store: write-once objects under keys, outside the warehouse.

`RAW_ARCHIVE_URL` chooses it: `s3://bucket/prefix` (adapters/s3_archive.py) or `file:///path`.
Objects are named by their content's hash, so writing one again is a no-op, and the store is
only ever asked to create: the function's grant in production is write-only (no read, no
delete), and conditional writes (`If-None-Match: *`) keep an existing object as it is.
"""

from __future__ import annotations

import abc
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from data_pipeline.errors import TransientError


class ArchiveStore(abc.ABC):
    """Blocking; callers on an event loop run it in a thread."""

    url: str

    @abc.abstractmethod
    def put(self, key: str, data: bytes) -> bool:
        """Create `key` unless it exists (then keep it: same key, same content). True when
        written now. Raises TransientError when the store cannot be reached."""

    @abc.abstractmethod
    def names(self, prefix: str = "") -> Iterator[str]:
        """Every key under `prefix`, in key order (reading needs more than the writer's grant)."""

    @abc.abstractmethod
    def get(self, key: str) -> bytes: ...


class FileArchive(ArchiveStore):
    """A directory, for the local stack and drills. Writes are atomic (temporary file, then a
    link that fails if the name exists), so a crash never leaves half an object under a key."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = root.as_uri()

    def put(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as staged:
                staged.write(data)
                staged.flush()
                os.fsync(staged.fileno())
            try:
                os.link(staged.name, path)  # create-only, like If-None-Match: *
                return True
            except FileExistsError:
                return False
            finally:
                os.unlink(staged.name)
        except OSError as error:
            raise TransientError(f"raw archive write failed: {error}") from error

    def names(self, prefix: str = "") -> Iterator[str]:
        found = []
        for path in self.root.rglob("*"):
            if path.is_file() and not path.name.startswith("tmp"):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    found.append(key)
        yield from sorted(found)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except OSError as error:
            raise TransientError(f"raw archive read failed: {error}") from error

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"archive key {key!r} leaves the archive")
        return self.root / key


def open_archive(url: str, *, s3_options: dict[str, str] | None = None) -> ArchiveStore:
    """The store `url` names: `file:///abs/path`, a plain path, or `s3://bucket[/prefix]`
    (`s3_options`: boto3 client arguments, e.g. explicit credentials and region)."""
    parts = urlsplit(url)
    if parts.scheme == "s3":
        from data_pipeline.adapters.s3_archive import S3Archive

        return S3Archive(parts.netloc, parts.path.strip("/"), client_options=s3_options)
    if parts.scheme == "file":
        return FileArchive(Path(unquote(parts.path)))
    if parts.scheme == "":
        return FileArchive(Path(url).resolve())
    raise ValueError(f"raw archive URL must be s3://bucket/prefix or file:///path, not {url!r}")
