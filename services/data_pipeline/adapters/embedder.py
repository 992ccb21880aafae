"""The embeddings port: text in, vectors out (OpenAI or any compatible endpoint behind it).

Kept apart from the `openai` adapter so that importing the service layer never imports the
`openai` package: a function with RAG off (and every cold start) skips its half second.
"""

from __future__ import annotations

import abc
from typing import Literal

Kind = Literal["query", "passage"]


class Embedder(abc.ABC):
    @abc.abstractmethod
    async def embed(self, texts: list[str], kind: Kind = "passage") -> list[list[float]]:
        """One vector per text, in order. Raises TransientError (retry later) or
        PermanentError (the input can never be embedded)."""

    @abc.abstractmethod
    async def aclose(self) -> None: ...
