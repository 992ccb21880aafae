"""Per-data-dir development secrets (webhook secret, API key, token encryption key).

A module of its own, light to import: commands that only need a data dir's key (`import-events`
into a local data dir) do not load the local stack, its web app and its SDKs."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from data_pipeline.adapters.token_cipher import TokenCipher

SECRETS_FILE = "local-secrets.json"


@dataclass(frozen=True)
class LocalSecrets:
    webhook_secret: str
    api_key: str
    token_encryption_key: str


def local_secrets(data_dir: Path) -> LocalSecrets:
    """Per-data-dir development secrets, generated on first use and kept (mode 0600)."""
    path = data_dir / SECRETS_FILE
    if path.exists():
        return LocalSecrets(**json.loads(path.read_text()))
    data_dir.mkdir(parents=True, exist_ok=True)
    created = LocalSecrets(
        webhook_secret="local-whsec-" + secrets.token_urlsafe(18),
        api_key="local-key-" + secrets.token_urlsafe(18),
        token_encryption_key=TokenCipher.generate_key(),
    )
    path.touch(mode=0o600)
    path.write_text(json.dumps(created.__dict__))
    return created
