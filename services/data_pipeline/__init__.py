"""Salla data-pipeline service: webhooks → QStash → ClickHouse, historical sync, RAG enrichment."""
