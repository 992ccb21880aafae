"""The raw archive bucket: every accepted event, outside the warehouse (docs/disaster-recovery.md).

Versioned, KMS-encrypted with its own rotating key, closed to the public, TLS-only; in prod with
object lock (governance mode: an administrator with `s3:BypassGovernanceRetention` can still
remove an object, nobody else can for `lockDays`) and protected. Objects move to Standard-IA
after 30 days (they are read only by a rebuild). The service gets a write-only grant:
`s3:PutObject` under the prefix and the key operations SSE-KMS needs to encrypt, no read, no
list, no delete, so a compromised function can add objects but not read or destroy the archive
(its writes are create-only: `If-None-Match: *`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.s3_buckets import secured_bucket
from infra.config import ArchiveConfig

PREFIX = "raw"


@dataclass
class ArchiveArgs:
    config: ArchiveConfig
    bucket_name: str  # S3 bucket names are global: the stack's prefix plus the config's suffix
    protect: bool
    object_lock: bool  # prod: governance-mode retention on every object


class RawArchiveBucket(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: ArchiveArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("salla:infra:RawArchiveBucket", name, None, opts)
        keep = pulumi.ResourceOptions(parent=self, protect=args.protect)
        child = pulumi.ResourceOptions(parent=self)
        config = args.config
        self.key = aws.kms.Key(
            f"{name}-archive-key",
            description=f"Raw event archive of {name}",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            opts=keep,
        )
        self.bucket, _ = secured_bucket(
            f"{name}-archive",
            args.bucket_name,
            self.key,
            lock_days=config.lock_days if args.object_lock else None,
            keep=keep,
            child=child,
        )
        bucket = self.bucket.id
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-archive-lifecycle",
            bucket=bucket,
            rules=[
                {
                    "id": "infrequent-access",
                    "status": "Enabled",
                    "filter": {"prefix": f"{PREFIX}/"},
                    "transitions": [
                        {"days": config.infrequent_access_days, "storage_class": "STANDARD_IA"}
                    ],
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
                }
            ],
            opts=child,
        )
        self.url = self.bucket.bucket.apply(lambda name_: f"s3://{name_}/{PREFIX}")
        self.writer_policy = pulumi.Output.all(self.bucket.arn, self.key.arn).apply(
            lambda arns: writer_policy(*arns)
        )
        self.register_outputs({"url": self.url, "bucket": self.bucket.bucket})


def writer_policy(bucket_arn: str, key_arn: str) -> str:
    """Write-only: create objects under the prefix, encrypted with the archive's key."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ArchiveWriteOnly",
                    "Effect": "Allow",
                    "Action": ["s3:PutObject"],
                    "Resource": [f"{bucket_arn}/{PREFIX}/*"],
                },
                {
                    "Sid": "ArchiveEncrypt",
                    "Effect": "Allow",
                    "Action": ["kms:GenerateDataKey", "kms:Encrypt"],
                    "Resource": [key_arn],
                },
            ],
        }
    )
