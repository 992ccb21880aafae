"""Upstash Redis: the pipeline's low-latency state (settlements, merchant tokens, sync jobs).

TLS on and eviction off: this is state, not a cache, and must never be dropped under memory
pressure. Upstash keeps the data durable itself; the provider exposes no backup settings (see
docs/disaster-recovery.md for what that means for recovery).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import upstash_pulumi as upstash

from infra.config import RedisConfig


@dataclass
class CacheArgs:
    config: RedisConfig
    protect: bool


class Cache(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: CacheArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("salla:infra:Cache", name, None, opts)
        config = args.config
        self.database = upstash.RedisDatabase(
            f"{name}-redis",
            database_name=name,
            region="global",
            primary_region=config.primary_region,
            read_regions=config.read_regions or None,
            tls=True,
            eviction=False,
            prod_pack=config.prod_pack,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        self.redis_url = pulumi.Output.secret(
            pulumi.Output.format(
                "rediss://default:{0}@{1}:{2}",
                self.database.password,
                self.database.endpoint,
                self.database.port,
            )
        )
        self.redis_token = pulumi.Output.secret(self.database.rest_token)
        self.register_outputs({"redis_url": self.redis_url, "redis_token": self.redis_token})
