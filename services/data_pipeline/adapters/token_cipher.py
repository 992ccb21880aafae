"""Merchant OAuth tokens are encrypted at rest (Fernet: AES-128-CBC + HMAC-SHA256).

TOKEN_ENCRYPTION_KEY holds comma-separated keys, newest first: new writes use the first, reads
try each, so keys rotate without re-encrypting everything at once.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from data_pipeline.errors import PermanentError


class TokenCipher:
    def __init__(self, keys: str) -> None:
        self._fernet = MultiFernet([Fernet(key.strip().encode()) for key in keys.split(",")])

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def decrypt(self, ciphertext: bytes) -> str:
        try:
            return self._fernet.decrypt(ciphertext).decode()
        except InvalidToken:
            raise PermanentError(
                "stored token cannot be decrypted with TOKEN_ENCRYPTION_KEY"
            ) from None

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()
