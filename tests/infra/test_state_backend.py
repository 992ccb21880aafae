"""The bootstrap program (remote state backend) under Pulumi's unit-test mocks."""

import json
import runpy

import pulumi
import pytest

from tests.infra.stack_harness import Declared, RecordingMocks, ensure_event_loop, resolve


@pytest.fixture(scope="module")
def backend():
    ensure_event_loop()
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(
        mocks, project="salla-pipeline-bootstrap", stack="bootstrap", preview=False
    )
    pulumi.runtime.set_all_config({"bootstrap:bucketName": "acme-pulumi-state"})
    declared: dict[str, Declared] = {}

    def record(args):
        declared[args.name] = Declared(
            args.type_,
            args.name,
            {},
            props=dict(args.props or {}),
            protect=bool(args.opts.protect),
            retain_on_delete=bool(args.opts.retain_on_delete),
        )

    pulumi.runtime.register_stack_transformation(record)
    exports = {}
    original = pulumi.export
    pulumi.export = lambda name, value: exports.__setitem__(name, value)
    try:

        @pulumi.runtime.test
        def declare():
            runpy.run_path("infra/bootstrap/__main__.py")
            return pulumi.Output.all(*exports.values())

        declare()
    finally:
        pulumi.export = original
    for _typ, name, inputs in mocks.created:
        declared[name].inputs = inputs
    return declared, {k: resolve(v) for k, v in exports.items()}


def by_type(declared, typ):
    (found,) = [d for d in declared.values() if d.typ == typ]
    return found


def all_of_type(declared, typ):
    return [d for d in declared.values() if d.typ == typ]


def test_bucket_table_and_keys_are_protected_and_retained(backend):
    declared, _ = backend
    for typ in ("aws:s3/bucket:Bucket", "aws:dynamodb/table:Table"):
        resource = by_type(declared, typ)
        assert resource.protect and resource.retain_on_delete, typ
    keys = all_of_type(declared, "aws:kms/key:Key")
    assert len(keys) == 3  # the state bucket's, and one per stack for its Pulumi secrets
    assert all(k.protect and k.retain_on_delete and k.inputs["enableKeyRotation"] for k in keys)


def test_bucket_is_versioned_locked_encrypted_and_private(backend):
    declared, exports = backend
    assert by_type(declared, "aws:s3/bucket:Bucket").inputs["objectLockEnabled"] is True
    versioning = by_type(declared, "aws:s3/bucketVersioning:BucketVersioning").inputs
    assert versioning["versioningConfiguration"]["status"] == "Enabled"
    lock = by_type(declared, "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration")
    assert lock.inputs["rule"]["defaultRetention"]["days"] >= 1
    (rule,) = by_type(
        declared,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    ).inputs["rules"]
    assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
    block = by_type(declared, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert all(
        block[k]
        for k in (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        )
    )
    lifecycle = by_type(
        declared, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
    )
    assert lifecycle.inputs["rules"][0]["noncurrentVersionExpiration"]["noncurrentDays"] == 365
    assert exports["login_url"] == "s3://acme-pulumi-state"


def test_bucket_policy_denies_plain_http(backend):
    declared, _ = backend
    policy = json.loads(by_type(declared, "aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_lock_table_has_deletion_protection_and_pitr(backend):
    declared, _ = backend
    table = by_type(declared, "aws:dynamodb/table:Table").inputs
    assert table["deletionProtectionEnabled"] is True
    assert table["pointInTimeRecovery"]["enabled"] is True
    assert table["hashKey"] == "LockID"


def test_each_stack_has_its_own_secrets_key_and_a_policy_reaching_only_its_own_state(backend):
    declared, exports = backend
    aliases = {a.inputs["name"] for a in all_of_type(declared, "aws:kms/alias:Alias")}
    assert {"alias/pulumi-secrets-dev", "alias/pulumi-secrets-prod"} <= aliases
    assert exports["prod_secrets_provider"] == "awskms://alias/pulumi-secrets-prod"
    policies = {
        p.inputs["name"]: json.loads(p.inputs["policy"])
        for p in all_of_type(declared, "aws:iam/policy:Policy")
    }
    dev = json.dumps(policies["pulumi-stack-salla-data-pipeline-dev"])
    prod = json.dumps(policies["pulumi-stack-salla-data-pipeline-prod"])
    assert "/prod" not in dev and "prod.json" not in dev  # dev cannot touch prod's state
    assert "/dev" not in prod and "dev.json" not in prod
    statements = {
        s["Sid"]: s for s in policies["pulumi-stack-salla-data-pipeline-dev"]["Statement"]
    }
    assert all(
        r.startswith("arn:aws:s3:::acme-pulumi-state/.pulumi/")
        for r in statements["OwnStateFiles"]["Resource"]
    )
    assert statements["OwnDeployLease"]["Condition"] == {
        "ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["salla-data-pipeline/dev"]}
    }
    # Each role may use only its own stack's secrets key (the mocks name ARNs after resources).
    assert statements["OwnSecretsKey"]["Resource"] == [
        "arn:aws:kms:eu-central-1:123456789012:key/pulumi-state-dev-secrets"
    ]
    assert "pulumi-state-dev-secrets" not in prod and "pulumi-state-prod-secrets" not in dev
    assert not any(r == "*" for s in statements.values() for r in s["Resource"])
