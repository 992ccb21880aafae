"""First-time setup: the remote state backend, deployed once with a local file backend.

cd infra/bootstrap && pulumi login file://. && pulumi stack init bootstrap && pulumi up
pulumi login s3://<bucket>?region=<region>   # then, from the repo root, every other stack
"""

import pulumi

from infra.components.state_backend import StateBackend, StateBackendArgs

config = pulumi.Config("bootstrap")
backend = StateBackend(
    "pulumi-state",
    StateBackendArgs(
        bucket_name=config.require("bucketName"),
        lock_table_name=config.get("lockTableName") or "pulumi-deploy-locks",
        noncurrent_version_days=config.get_int("noncurrentVersionDays") or 365,
        stacks=tuple(config.get_object("stacks") or ("dev", "prod")),
    ),
)
pulumi.export("state_bucket", backend.bucket.bucket)
pulumi.export("lock_table", backend.lock_table.name)
pulumi.export("kms_key_arn", backend.key.arn)
pulumi.export("login_url", pulumi.Output.concat("s3://", backend.bucket.bucket))
for stack, policy in backend.stack_policies.items():
    # Attach to that stack's CI role; init the stack with its own secrets key:
    #   pulumi stack init <stack> --secrets-provider "awskms://alias/pulumi-secrets-<stack>?region=…"
    pulumi.export(f"{stack}_access_policy_arn", policy.arn)
    pulumi.export(f"{stack}_secrets_provider", f"awskms://alias/pulumi-secrets-{stack}")
