"""Pinecone: the per-merchant vector index behind the app's RAG assistant.

One serverless index (cosine) whose dimension is the configured embedding model's, checked
against the same table the service uses (shared.contract), so a model change that would
break every upsert fails at `pulumi preview`, not at the first embed step. One namespace per
merchant is created by the service on first upsert. The API key is a stack secret given to an
explicit provider, and deletion protection is on in prod (the index is rebuilt from the
warehouse otherwise; see docs/disaster-recovery.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import pinecone_pulumi as pinecone
import pulumi

from infra.config import RagConfig


@dataclass
class VectorIndexArgs:
    config: RagConfig
    api_key: pulumi.Output[str]
    protect: bool


class VectorIndex(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: VectorIndexArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("salla:infra:VectorIndex", name, None, opts)
        config = args.config
        provider = pinecone.Provider(
            f"{name}-pinecone",
            api_key=pulumi.Output.secret(args.api_key),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.index = pinecone.Index(
            f"{name}-vectors",
            # Pinecone index names are project-wide: the default is the stack's own.
            name=config.index_name or f"{name}-vectors",
            dimension=config.dimensions,
            metric="cosine",
            vector_type="dense",
            spec=pinecone.IndexSpecArgs(
                serverless=pinecone.IndexSpecServerlessArgs(
                    cloud=config.pinecone_cloud, region=config.pinecone_region
                )
            ),
            deletion_protection="enabled" if args.protect else "disabled",
            tags={"service": "salla-data-pipeline"},
            opts=pulumi.ResourceOptions(parent=self, provider=provider, protect=args.protect),
        )
        self.index_name = self.index.name
        # The data-plane host the service calls (skips a describe-index lookup per cold start).
        self.host = self.index.host.apply(
            lambda host: host if not host or host.startswith("https://") else f"https://{host}"
        )
        self.register_outputs({"index_name": self.index_name, "host": self.host})
