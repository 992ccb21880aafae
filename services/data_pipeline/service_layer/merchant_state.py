"""Merchant state from Salla's app events: installation and OAuth tokens.

Shared by the webhook worker (processing.py) and the bulk import (importer.py), which imports
none of the webhook path's logging, metrics and RAG (a tenth of a second of every import's start).
"""

from __future__ import annotations

from collections.abc import Sequence

from data_pipeline.adapters.state import EncryptedTokens, StateStore
from data_pipeline.adapters.token_cipher import TokenCipher
from data_pipeline.domain.model import MerchantAuthorized, MerchantChange, MerchantInstallChanged


async def apply_merchant_changes(
    state: StateStore, cipher: TokenCipher, changes: Sequence[MerchantChange]
) -> None:
    """Installation state and OAuth tokens, each applied only when newer (versioned)."""
    for change in changes:
        if isinstance(change, MerchantAuthorized):
            tokens = EncryptedTokens(
                access_token=cipher.encrypt(change.access_token),
                refresh_token=cipher.encrypt(change.refresh_token),
                expires_at=change.expires_at.timestamp() if change.expires_at else None,
                scope=change.scope,
            )
            await state.set_tokens(change.merchant_id, tokens, change.version)
        elif isinstance(change, MerchantInstallChanged):
            await state.set_installed(change.merchant_id, change.installed, change.version)
