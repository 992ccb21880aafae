"""The Lambda zip, built for real from the pinned requirements (wheels for linux/arm64)."""

import zipfile

import pytest

from infra import bundle


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bundle")
    return bundle.build(directory / "a.zip"), bundle.build(directory / "b.zip")


def test_the_bundle_fits_lambda_and_carries_only_production_code(built):
    first, _ = built
    assert first.zipped_bytes < bundle.LAMBDA_ZIP_LIMIT
    assert first.unzipped_bytes < bundle.LAMBDA_UNZIPPED_LIMIT
    names = zipfile.ZipFile(first.path).namelist()
    top = {name.split("/")[0].split("-")[0].lower() for name in names}
    assert not top & set(bundle.FORBIDDEN), top & set(bundle.FORBIDDEN)
    assert "data_pipeline/entrypoints/lambda_handler.py" in names
    assert "shared/contract.py" in names
    assert not any(name.startswith("data_pipeline/devtools") for name in names)
    assert not any(name.endswith(".pyc") for name in names)
    assert any(name.startswith("pydantic_core/") and "aarch64" in name for name in names)


def test_the_bundle_is_reproducible(built):
    first, second = built
    assert first.sha256 == second.sha256


def test_the_lock_covers_every_production_dependency():
    pinned = {
        line.split("==")[0].lower().replace("_", "-")
        for line in bundle.LOCK_FILE.read_text().splitlines()
        if line and not line.startswith("#")
    }
    for requirement in bundle.production_dependencies():
        name = requirement.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip().lower()
        assert name.replace("_", "-") in pinned, name
