"""The raw archive's object stores, one contract: a directory, and S3 through the real boto3
client against a local S3-compatible server over HTTP (moto's server mode; S3 itself cannot be
reached from here). Create-only writes are what make re-archiving idempotent with a write-only
grant: S3 answers 412 to `If-None-Match: *` on an existing key
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html)."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from data_pipeline.adapters.archive import FileArchive, open_archive
from data_pipeline.adapters.s3_archive import S3Archive
from data_pipeline.errors import TransientError

from tests.support.s3_server import local_s3

KEY = "merchant=7/date=2026-12-01/" + "a" * 64 + ".jsonl.gz"


@pytest.fixture(params=["file", "s3"])
def store(request, tmp_path, monkeypatch):
    if request.param == "file":
        yield FileArchive(tmp_path / "archive")
        return
    with local_s3(monkeypatch) as s3:
        yield S3Archive(s3.create_bucket(), "raw")


def test_a_key_is_written_once_and_keeps_its_first_content(store):
    assert store.put(KEY, b"first") is True
    assert store.put(KEY, b"second") is False
    assert store.get(KEY) == b"first"


def test_keys_are_listed_in_order_under_a_prefix(store):
    keys = [
        "merchant=8/date=2026-12-02/" + "b" * 64 + ".jsonl.gz",
        KEY,
        "merchant=7/date=2026-11-30/" + "c" * 64 + ".jsonl.gz",
    ]
    for key in keys:
        store.put(key, key.encode())
    assert list(store.names()) == sorted(keys)
    assert list(store.names("merchant=7/")) == sorted(keys[1:])
    assert list(store.names("merchant=9/")) == []


def test_concurrent_writers_of_one_key_create_it_exactly_once(store):
    with ThreadPoolExecutor(8) as pool:
        created = list(pool.map(lambda n: store.put(KEY, b"same"), range(16)))
    assert created.count(True) == 1 and store.get(KEY) == b"same"


def test_the_file_store_refuses_keys_that_leave_it(tmp_path):
    store = FileArchive(tmp_path / "archive")
    for key in ("../escape", "/etc/passwd", "a/../../b"):
        with pytest.raises(ValueError, match="leaves the archive"):
            store.put(key, b"x")


def test_an_unreachable_s3_is_a_transient_error(monkeypatch):
    with local_s3(monkeypatch) as s3:
        store = S3Archive(s3.create_bucket(), "raw")
        s3.stop()
        with pytest.raises(TransientError, match="raw archive write failed"):
            store.put(KEY, b"x")
        s3.start_again()
        assert store.put(KEY, b"x") is True


def test_a_missing_bucket_is_a_transient_error_naming_it(monkeypatch):
    with local_s3(monkeypatch), pytest.raises(TransientError, match="NoSuchBucket"):
        S3Archive("no-such-bucket", "raw").put(KEY, b"x")


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("s3://bucket/raw", S3Archive),
        ("file:///tmp/archive", FileArchive),
        ("rel/dir", FileArchive),
    ],
)
def test_archive_urls_choose_the_store(url, kind, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    assert isinstance(open_archive(url), kind)


@pytest.mark.parametrize("url", ["http://bucket/raw", "gs://bucket", "s3:///raw"])
def test_other_archive_urls_are_refused(url):
    with pytest.raises(ValueError):
        open_archive(url)
