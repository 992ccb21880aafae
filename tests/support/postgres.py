"""A fresh PostgreSQL database per test on one server per module (creating a database is fast,
starting a server is not)."""

import uuid

import psycopg


def fresh_database(server_url: str, schema: str, prefix: str = "db") -> str:
    """A new database on the server of `server_url`, with `schema` applied; its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    url = server_url.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(schema)
    return url
