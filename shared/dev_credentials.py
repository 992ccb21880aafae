"""The public, deterministic credentials of QStash's local development server (Upstash documents
them as dev-only). The local QStash-compatible server uses the same ones by default; production
settings refuse them (shared.contract).

A module of its own, without pydantic: the command line's option defaults name them, and every
`salla-pipeline` command would otherwise import the settings model to start (~0.2 s).
"""

DEV_QSTASH_TOKEN = "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0="  # noqa: S105
DEV_QSTASH_CURRENT_SIGNING_KEY = "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r"
DEV_QSTASH_NEXT_SIGNING_KEY = "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs"
