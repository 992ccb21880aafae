"""App lifecycle events: installation state and the merchant's OAuth tokens (Easy Mode)."""

from __future__ import annotations

from typing import Any

from data_pipeline.domain.dates import parse_optional_datetime
from data_pipeline.domain.fields import text
from data_pipeline.domain.model import MerchantAuthorized, MerchantInstallChanged
from data_pipeline.errors import InvalidPayload

APP_EVENTS: frozenset[str] = frozenset({"app.store.authorize", "app.installed", "app.uninstalled"})
# Keys whose values are credentials: redacted from the raw archive and from any log line.
SECRET_KEYS = frozenset({"access_token", "refresh_token"})


def authorization(data: dict[str, Any], *, merchant_id: int, version: int) -> MerchantAuthorized:
    access = data.get("access_token")
    if not isinstance(access, str) or not access.strip():
        raise InvalidPayload("app.store.authorize without an access_token")
    refresh = data.get("refresh_token")
    if refresh is not None and not isinstance(refresh, str):
        raise InvalidPayload("app.store.authorize refresh_token must be a string")
    return MerchantAuthorized(
        merchant_id=merchant_id,
        version=version,
        access_token=access.strip(),
        refresh_token=(refresh or "").strip(),
        # `expires` is an absolute Unix timestamp in seconds, not a duration (reference §2.7).
        expires_at=parse_optional_datetime(data.get("expires"), field="data.expires"),
        scope=text(data.get("scope"), field="data.scope", limit=2000) or "",
    )


def install_change(event: str, *, merchant_id: int, version: int) -> MerchantInstallChanged:
    return MerchantInstallChanged(
        merchant_id=merchant_id, version=version, installed=event != "app.uninstalled"
    )


def redact_secrets(document: Any) -> Any:
    """A copy of a JSON document with every credential value replaced."""
    if isinstance(document, dict):
        return {
            key: "[redacted]" if key in SECRET_KEYS else redact_secrets(value)
            for key, value in document.items()
        }
    if isinstance(document, list):
        return [redact_secrets(value) for value in document]
    return document
