"""The Pulumi program under Pulumi's unit-test mocks, with the committed stack files."""

import json

import pytest

from infra import bundle
from shared.contract import env_var_names, secret_env_var_names
from shared.topics import (
    ALL_FLOWS,
    ALL_TOPICS,
    CDC_DRAIN_PATH,
    CDC_EVENT_PATH,
    PROCESS_EVENT_PATH,
    WEBHOOK_PATH,
)
from tests.infra.stack_harness import SECRETS, is_secret, resolve, run_stack


@pytest.fixture(scope="module", autouse=True)
def lambda_bundle():
    path = bundle.ROOT / "dist" / "lambda.zip"
    created = not path.exists()
    if created:  # the program refuses to run without the bundle; an empty file stands in
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    yield path
    if created:
        path.unlink()


@pytest.fixture(scope="module")
def prod():
    return run_stack("prod")


@pytest.fixture(scope="module")
def dev():
    return run_stack("dev")


FUNCTION = "aws:lambda/function:Function"
INVOCATION = "aws:lambda/invocation:Invocation"


def test_prod_inventory(prod):
    types = sorted({r.typ for r in prod.resources if not r.typ.startswith("salla:")})
    assert types == sorted(
        [
            "aws:apigatewayv2/api:Api",
            "aws:apigatewayv2/integration:Integration",
            "aws:apigatewayv2/route:Route",
            "aws:apigatewayv2/stage:Stage",
            "aws:cloudwatch/logGroup:LogGroup",
            "aws:ec2/eip:Eip",
            "aws:ec2/internetGateway:InternetGateway",
            "aws:ec2/natGateway:NatGateway",
            "aws:ec2/routeTable:RouteTable",
            "aws:ec2/routeTableAssociation:RouteTableAssociation",
            "aws:ec2/securityGroup:SecurityGroup",
            "aws:ec2/subnet:Subnet",
            "aws:ec2/vpc:Vpc",
            "aws:iam/role:Role",
            "aws:iam/rolePolicy:RolePolicy",
            "aws:kms/key:Key",
            FUNCTION,
            INVOCATION,
            "aws:lambda/permission:Permission",
            "aws:s3/bucket:Bucket",
            "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
            "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
            "aws:s3/bucketPolicy:BucketPolicy",
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
            "aws:s3/bucketVersioning:BucketVersioning",
            "clickhouse:index/service:Service",
            "pinecone:index/index:Index",
            "pulumi:providers:pinecone",
            "random:index/randomBytes:RandomBytes",
            "random:index/randomPassword:RandomPassword",
            "upstash:index/qStashTopic:QStashTopic",
            "upstash:index/qStashTopicV2:QStashTopicV2",
            "upstash:index/redisDatabase:RedisDatabase",
        ]
    )
    components = {r.typ for r in prod.resources if r.typ.startswith("salla:")}
    assert components == {
        "salla:infra:Network",
        "salla:infra:Warehouse",
        "salla:infra:Cache",
        "salla:infra:LambdaService",
        "salla:infra:Messaging",
        "salla:infra:VectorIndex",
        "salla:infra:RawArchiveBucket",
    }


def test_every_stateful_prod_resource_is_protected(prod):
    stateful = (
        "clickhouse:index/service:Service",
        "upstash:index/redisDatabase:RedisDatabase",
        "random:index/randomBytes:RandomBytes",
        "pinecone:index/index:Index",
        "aws:s3/bucket:Bucket",  # the raw archive
        "aws:kms/key:Key",  # its key: without it the archive cannot be read
    )
    for typ in stateful:
        for resource in prod.of_type(typ):
            assert resource.protect, f"{typ} {resource.name} is not protected"
    api_key = [
        r
        for r in prod.of_type("random:index/randomPassword:RandomPassword")
        if r.name.endswith("api-key")
    ]
    assert api_key and api_key[0].protect


def test_dev_declares_the_same_kinds_of_resources_as_prod(dev, prod):
    # Object lock is prod's alone (a dev archive must stay deletable).
    lock = "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration"
    assert {r.typ for r in dev.resources} == {r.typ for r in prod.resources} - {lock}
    assert dev.named(FUNCTION, "-worker").inputs["reservedConcurrentExecutions"] == 10
    assert dev.one("clickhouse:index/service:Service").inputs["idleScaling"] is True


def test_dev_is_not_protected_so_it_can_be_torn_down(dev):
    assert not dev.one("clickhouse:index/service:Service").protect


# -- two stacks in one account --------------------------------------------------------------------
ACCOUNT_LEVEL_NAMES = {
    # resource type → the input that is its name in the provider's account
    "upstash:index/qStashTopic:QStashTopic": "name",
    "upstash:index/qStashTopicV2:QStashTopicV2": "name",
    "upstash:index/redisDatabase:RedisDatabase": "databaseName",
    "clickhouse:index/service:Service": "name",
    "pinecone:index/index:Index": "name",
    FUNCTION: "name",
    "aws:cloudwatch/logGroup:LogGroup": "name",
    "vercel:index/project:Project": "name",
}


def account_names(run):
    names = {
        (typ, resource.inputs[key])
        for typ, key in ACCOUNT_LEVEL_NAMES.items()
        for resource in run.of_type(typ)
    }
    worker = run.named(FUNCTION, "-worker").props["environment"].variables
    prefix = resolve(worker["QSTASH_TOPIC_PREFIX"])
    # Flow-control keys are account-level too: they are the prefix + shared.topics flows.
    names |= {("qstash flow-control key", prefix + flow) for flow in ALL_FLOWS}
    return names, prefix


def test_two_stacks_in_one_account_share_no_name(dev, prod):
    staging = run_stack("staging", config_from="dev")  # a second stack of the dev kind
    runs = {"dev": dev, "prod": prod, "staging": staging}
    seen = {stack: account_names(run) for stack, run in runs.items()}
    for stack, (names, prefix) in seen.items():
        assert prefix == f"salla-pipeline-{stack}-"
        assert {typ for typ, _ in names} >= set(ACCOUNT_LEVEL_NAMES) - {
            "vercel:index/project:Project"
        }
        for other, (other_names, other_prefix) in seen.items():
            if other != stack:
                assert not names & other_names, (stack, other, names & other_names)
                assert not other_prefix.startswith(prefix)
    # IAM roles and the HTTP API are named by Pulumi with a random suffix: unique by design.
    assert all("name" not in r.inputs for r in prod.of_type("aws:iam/role:Role"))


def test_a_stack_name_that_cannot_prefix_resources_is_refused():
    from pulumi import RunError

    with pytest.raises(RunError, match="stack name 'Prod_EU'"):
        run_stack("Prod_EU", config_from="prod")


# -- intake, workers and the migrator --------------------------------------------------------------
def test_intake_and_workers_are_separate_functions_with_their_own_concurrency(prod):
    intake = prod.named(FUNCTION, "-intake")
    worker = prod.named(FUNCTION, "-worker")
    assert intake.inputs["reservedConcurrentExecutions"] == 30
    assert worker.inputs["reservedConcurrentExecutions"] == 100
    routes = {
        r.inputs["routeKey"]: r.inputs["target"]
        for r in prod.of_type("aws:apigatewayv2/route:Route")
    }
    integrations = {
        f"integrations/{r.name}-id": r.inputs["integrationUri"]
        for r in prod.of_type("aws:apigatewayv2/integration:Integration")
    }
    assert set(routes) == {f"POST {WEBHOOK_PATH}", "$default"}
    assert integrations[routes[f"POST {WEBHOOK_PATH}"]].endswith("salla-pipeline-prod-intake")
    assert integrations[routes["$default"]].endswith("salla-pipeline-prod-worker")
    for function, role in ((intake, "intake"), (worker, "worker")):
        assert resolve(function.props["environment"].variables["PIPELINE_ROLE"]) == role


def test_qstash_flow_control_keeps_workers_below_their_concurrency(prod):
    variables = prod.named(FUNCTION, "-worker").props["environment"].variables
    shares = [
        int(resolve(variables[f"QSTASH_FLOW_PARALLELISM_{flow.upper()}"])) for flow in ALL_FLOWS
    ]
    assert shares == [50, 20, 10]
    assert sum(shares) < prod.named(FUNCTION, "-worker").inputs["reservedConcurrentExecutions"]


def test_the_migrator_runs_inside_the_vpc_without_standing_credentials(prod):
    from shared.contract import MigratorSettings

    migrator = prod.named(FUNCTION, "-migrator")
    assert migrator.inputs["handler"] == bundle.MIGRATOR_HANDLER
    assert migrator.inputs["reservedConcurrentExecutions"] == 1
    assert migrator.inputs["timeout"] == 900 and migrator.inputs["vpcConfig"]["subnetIds"]
    variables = migrator.props["environment"].variables
    assert sorted(variables) == sorted(env_var_names(MigratorSettings))
    assert not any("CLICKHOUSE_URL" in name or "PASSWORD" in name for name in variables)
    assert is_secret(variables["REDIS_URL"])


def test_the_deploy_migrates_through_the_migrator_before_the_service_changes(prod):
    from data_pipeline.entrypoints.migrate_handler import parse_event
    from data_pipeline.service_layer.schema import LATEST_SCHEMA_VERSION

    invocation = prod.one(INVOCATION)
    assert invocation.inputs["functionName"] == "salla-pipeline-prod-migrator"
    assert is_secret(invocation.props["input"])
    # The event the deployment sends is one the deployed handler accepts, for this schema.
    request = parse_event(json.loads(resolve(invocation.props["input"])))
    assert request.schema_version == LATEST_SCHEMA_VERSION
    assert request.admin_url.startswith("https://default:") and ":8443" in request.admin_url
    assert len(request.writer_password) == 32 and request.writer_password != request.admin_url
    assert invocation.inputs["triggers"]["schemaVersion"] == str(LATEST_SCHEMA_VERSION)
    assert len(invocation.inputs["triggers"]["bundle"]) == 64
    assert "salla-pipeline-prod-nat" in invocation.depends_on
    for function in ("-intake", "-worker"):
        assert "salla-pipeline-prod-migrate" in prod.named(FUNCTION, function).depends_on
    assert not prod.of_type("pulumi-python:dynamic:Resource")  # nothing connects from Pulumi


def test_secret_outputs_are_secrets_and_plain_ones_are_not(prod):
    secret = {
        "clickhouse_connection_string",
        "clickhouse_read_only_connection_string",
        "redis_url",
        "redis_token",
        "qstash_token",
        "qstash_current_signing_key",
        "qstash_next_signing_key",
        "pipeline_api_key",
    }
    assert secret <= prod.secret_exports
    assert {"pipeline_endpoint", "webhook_url"}.isdisjoint(prod.secret_exports)
    endpoint = prod.exports["pipeline_endpoint"]
    assert endpoint.startswith("https://") and endpoint.endswith(".amazonaws.com")
    assert prod.exports["webhook_url"] == endpoint + WEBHOOK_PATH
    assert (
        prod.exports["clickhouse_connection_string"].startswith("https://pipeline_writer:")
        and ":8443" in prod.exports["clickhouse_connection_string"]
    )
    assert prod.exports["clickhouse_read_only_connection_string"].startswith("https://app_reader:")
    assert prod.exports["redis_url"].startswith("rediss://default:redis-password-value@")


def test_function_environments_are_exactly_the_contract_with_secrets_secret(prod):
    for name in ("-intake", "-worker"):
        variables = prod.named(FUNCTION, name).props["environment"].variables
        assert sorted(variables) == sorted(env_var_names())
        for variable, value in variables.items():
            assert is_secret(value) == (variable in secret_env_var_names()), variable
    variables = prod.named(FUNCTION, "-worker").props["environment"].variables
    resolved = {name: resolve(value) for name, value in variables.items()}
    assert resolved["PIPELINE_PUBLIC_URL"] == resolve(prod.exports["pipeline_endpoint"])
    assert resolved["QSTASH_TOKEN"] == SECRETS["pipeline:qstashToken"]
    assert resolved["PIPELINE_ENVIRONMENT"] == "production"
    assert resolved["PIPELINE_DEPLOYMENT"] == "prod" and resolved["PIPELINE_METRICS"] == "emf"
    assert resolved["CLICKHOUSE_URL"] == prod.exports["clickhouse_connection_string"]
    assert resolved["SALLA_CLIENT_ID"] == "salla-client-id"
    assert resolved["SALLA_CLIENT_SECRET"] == SECRETS["pipeline:sallaClientSecret"]
    assert resolved["SALLA_API_BASE_URL"] == "https://api.salla.dev/admin/v2"
    assert resolved["OPENAI_API_KEY"] == SECRETS["pipeline:openaiApiKey"]
    assert resolved["PINECONE_API_KEY"] == SECRETS["pipeline:pineconeApiKey"]
    assert resolved["PINECONE_HOST"] == prod.exports["pinecone_host"]
    assert resolved["PINECONE_INDEX"] == prod.exports["pinecone_index"]
    assert resolved["RAG_ENABLED"] == "true"


def test_the_pinecone_index_matches_the_embedding_model_and_is_protected_in_prod(prod, dev):
    index = prod.one("pinecone:index/index:Index")
    assert index.inputs["dimension"] == 1536  # text-embedding-3-small
    assert index.inputs["metric"] == "cosine"
    assert index.inputs["spec"]["serverless"] == {"cloud": "aws", "region": "us-east-1"}
    assert index.inputs["deletionProtection"] == "enabled" and index.protect
    assert dev.one("pinecone:index/index:Index").inputs["deletionProtection"] == "disabled"
    assert prod.exports["pinecone_host"].startswith("https://")
    assert "pinecone_host" not in prod.secret_exports


def test_a_configured_model_size_flows_to_the_index_and_the_function():
    run = run_stack(
        "prod",
        {
            "pipeline:rag": {
                "embeddingModel": "multilingual-e5-small",
                "openaiBaseUrl": "https://embeddings.internal.example/v1",
            }
        },
    )
    assert run.one("pinecone:index/index:Index").inputs["dimension"] == 384
    variables = run.named(FUNCTION, "-worker").props["environment"].variables
    assert resolve(variables["EMBEDDING_MODEL"]) == "multilingual-e5-small"
    assert resolve(variables["OPENAI_BASE_URL"]) == "https://embeddings.internal.example/v1"


def test_rag_can_be_left_out_without_its_secrets():
    from tests.infra import stack_harness

    saved = dict(stack_harness.SECRETS)
    for key in ("pipeline:openaiApiKey", "pipeline:pineconeApiKey"):
        stack_harness.SECRETS.pop(key)
    try:
        run = run_stack("prod", {"pipeline:rag": {"enabled": False}})
    finally:
        stack_harness.SECRETS.clear()
        stack_harness.SECRETS.update(saved)
    assert run.of_type("pinecone:index/index:Index") == []
    variables = run.named(FUNCTION, "-worker").props["environment"].variables
    assert resolve(variables["RAG_ENABLED"]) == "false"
    assert resolve(variables["PINECONE_API_KEY"]) == ""


def test_the_environments_are_valid_production_configurations(prod):
    from shared.contract import PipelineSettings

    for name in ("-intake", "-worker"):
        variables = prod.named(FUNCTION, name).props["environment"].variables
        values = {name.lower(): resolve(value) for name, value in variables.items()}
        settings = PipelineSettings(**values)  # the service would start with exactly this
        assert settings.redis_url is not None and settings.qstash_retries == 5
        assert settings.topic("raw-events") == "salla-pipeline-prod-raw-events"


def test_lambda_runs_python312_on_arm64_with_least_privilege(prod):
    functions = prod.of_type(FUNCTION)
    assert len(functions) == 3
    for function in functions:
        assert function.inputs["runtime"] == "python3.12"
        assert function.inputs["architectures"] == ["arm64"]
        assert function.inputs["vpcConfig"]["subnetIds"]
    assert prod.named(FUNCTION, "-worker").inputs["handler"] == bundle.HANDLER
    policy = json.loads(prod.named("aws:iam/rolePolicy:RolePolicy", "-policy").inputs["policy"])
    actions = {a for statement in policy["Statement"] for a in statement["Action"]}
    assert "logs:CreateLogGroup" not in actions and not any("*" in a for a in actions)
    log_statement = policy["Statement"][0]
    assert log_statement["Resource"] != "*" and len(log_statement["Resource"]) == 3
    groups = prod.of_type("aws:cloudwatch/logGroup:LogGroup")
    assert {g.inputs["retentionInDays"] for g in groups} == {90}
    assert {g.inputs["name"] for g in groups} == {
        f"/aws/lambda/salla-pipeline-prod-{f}" for f in ("intake", "worker", "migrator")
    }


def test_qstash_topics_are_the_stacks_own_and_deliver_to_the_deployed_url(prod):
    delivering = {
        r.inputs["name"]: r.inputs["endpoints"]
        for r in prod.of_type("upstash:index/qStashTopicV2:QStashTopicV2")
    }
    base = prod.exports["pipeline_endpoint"]
    assert delivering["salla-pipeline-prod-raw-events"] == [base + PROCESS_EVENT_PATH]
    assert delivering["salla-pipeline-prod-cdc-events"] == [base + CDC_EVENT_PATH]
    names = {
        r.inputs["name"] for r in prod.resources if r.typ.startswith("upstash:index/qStashTopic")
    }
    assert names == {f"salla-pipeline-prod-{topic}" for topic in ALL_TOPICS}


def test_clickhouse_allow_list_contains_the_service_egress_and_backups_are_on(prod):
    service = prod.one("clickhouse:index/service:Service")
    sources = {entry["source"] for entry in service.inputs["ipAccesses"]}
    assert "203.0.113.9/32" in sources and "0.0.0.0/0" not in sources
    assert prod.exports["egress_ips"] == ["203.0.113.9/32"]
    backups = service.inputs["backupConfiguration"]
    assert backups["backupPeriodInHours"] <= 24 and backups["backupRetentionPeriodInHours"] == 720


def test_redis_has_tls_and_no_eviction(prod):
    redis = prod.one("upstash:index/redisDatabase:RedisDatabase")
    assert redis.inputs["tls"] is True and redis.inputs["eviction"] is False


def test_restore_from_backup_is_passed_to_the_service():
    restored = run_stack(
        "prod",
        {
            "pipeline:clickhouse": {
                "cloudProvider": "aws",
                "region": "eu-central-1",
                "restoreFromBackupId": "backup-123",
            }
        },
    )
    assert restored.one("clickhouse:index/service:Service").inputs["backupId"] == "backup-123"


def vercel_stack(**vercel):
    return run_stack(
        "prod",
        {
            "pipeline:deployTarget": "vercel",
            "pipeline:vercel": {"region": "fra1", **vercel},
            "pipeline:clickhouse": {
                "cloudProvider": "aws",
                "region": "eu-central-1",
                "allowedIps": ["76.76.21.0/24"],
            },
        },
    )


def test_vercel_target_uses_the_project_url_and_sensitive_variables():
    run = vercel_stack()
    assert run.one("vercel:index/project:Project").inputs["name"] == "salla-pipeline-prod"
    assert run.exports["pipeline_endpoint"] == "https://salla-pipeline-prod.vercel.app"
    variables = run.of_type("vercel:index/projectEnvironmentVariable:ProjectEnvironmentVariable")
    assert sorted(v.inputs["key"] for v in variables) == sorted(env_var_names())
    for variable in variables:
        assert variable.inputs["sensitive"] == (variable.inputs["key"] in secret_env_var_names())
    role = next(v for v in variables if v.inputs["key"] == "PIPELINE_ROLE")
    assert resolve(role.props["value"]) == "all"
    assert not run.of_type(FUNCTION)
    assert run.one("vercel:index/deployment:Deployment").inputs["production"] is True
    assert vercel_stack(projectName="my-pipeline").exports["pipeline_endpoint"] == (
        "https://my-pipeline.vercel.app"
    )


def test_vercel_migrates_through_the_live_deployment():
    from data_pipeline.entrypoints.migrate_handler import parse_event

    run = vercel_stack()
    migration = run.one("pulumi-python:dynamic:Resource")
    assert (
        resolve(migration.props["url"]) == "https://salla-pipeline-prod.vercel.app/api/ops/migrate"
    )
    assert is_secret(migration.props["request"]) and is_secret(migration.props["api_key"])
    assert parse_event(json.loads(resolve(migration.props["request"]))).schema_version >= 1
    assert "salla-pipeline-prod-deployment" in migration.depends_on


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"pipeline:environment": "staging"}, "pipeline:environment"),
        (
            {"pipeline:clickhouse": {"region": "eu-central-1", "backupPeriodHours": 48}},
            "pipeline:clickhouse.backupPeriodHours",
        ),
        (
            {"pipeline:clickhouse": {"region": "eu-central-1", "allowedIps": ["not-an-ip"]}},
            "pipeline:clickhouse.allowedIps",
        ),
        ({"pipeline:clickhouse": None}, "pipeline:clickhouse: is required"),
        (
            {"pipeline:lambda": {"vpcEgress": True, "availabilityZones": ["eu-central-1a"]}},
            "availabilityZones",
        ),
        ({"pipeline:deployTarget": "vercel"}, "vercel settings are required"),
        ({"pipeline:qstashRetries": "many"}, "pipeline:qstashRetries"),
        (
            {"pipeline:rag": {"embeddingModel": "my-own-model"}},
            "pipeline:rag: embeddingDimensions is required",
        ),
        ({"pipeline:rag": {"indexName": "Bad_Name"}}, "pipeline:rag.indexName"),
        (
            {"pipeline:workerParallelism": {"events": 60, "sync": 30, "embed": 10}},
            r"workerParallelism \(events \+ sync \+ embed = 100\) must stay below",
        ),
        ({"pipeline:lambda": {"reservedConcurrency": 10}}, "pipeline:lambda.reservedConcurrency"),
        (
            {"pipeline:clickhouse": {"region": "eu-central-1", "allowAnywhere": True}},
            "allowAnywhere is refused in prod",
        ),
    ],
)
def test_invalid_configuration_fails_naming_the_key(overrides, message):
    from pulumi import RunError

    with pytest.raises(RunError, match=message):
        run_stack("prod", overrides)


def test_missing_secrets_are_named():
    from pulumi import RunError

    from tests.infra import stack_harness

    saved = dict(stack_harness.SECRETS)
    stack_harness.SECRETS.pop("pipeline:qstashToken")
    stack_harness.SECRETS.pop("pipeline:pineconeApiKey")
    try:
        with pytest.raises(RunError, match=r"pipeline:qstashToken.*pipeline:pineconeApiKey"):
            run_stack("prod")
    finally:
        stack_harness.SECRETS.clear()
        stack_harness.SECRETS.update(saved)


def test_the_salla_client_id_is_required_and_named():
    from pulumi import RunError

    with pytest.raises(RunError, match="sallaClientId"):
        run_stack("prod", {"pipeline:sallaClientId": None})


def test_cdc_declares_its_drain_schedule_and_a_secret_database_url():
    from tests.infra import stack_harness

    stack_harness.SECRETS["pipeline:cdcDatabaseUrl"] = "postgresql://replicator:pw@db:5432/app"
    try:
        run = run_stack("prod", {"pipeline:cdc": {"tables": ["public.merchants", "app.goals"]}})
    finally:
        stack_harness.SECRETS.pop("pipeline:cdcDatabaseUrl")
    [schedule] = run.of_type("upstash:index/qStashScheduleV2:QStashScheduleV2")
    assert schedule.inputs["cron"] == "* * * * *"
    assert schedule.inputs["destination"] == run.exports["pipeline_endpoint"] + CDC_DRAIN_PATH
    variables = run.named(FUNCTION, "-worker").props["environment"].variables
    assert resolve(variables["CDC_TABLES"]) == "public.merchants,app.goals"
    assert resolve(variables["CDC_DATABASE_URL"]) == "postgresql://replicator:pw@db:5432/app"
    assert is_secret(variables["CDC_DATABASE_URL"])


def test_cdc_is_off_without_tables_and_needs_its_secret_with_them(prod):
    from pulumi import RunError

    assert prod.of_type("upstash:index/qStashScheduleV2:QStashScheduleV2") == []
    with pytest.raises(RunError, match="pipeline:cdcDatabaseUrl"):
        run_stack("prod", {"pipeline:cdc": {"tables": ["public.merchants"]}})


def test_subscribed_domain_events_get_their_own_topics_and_reach_the_function():
    subscribers = {
        "order.created": ["https://app.example/hooks/orders"],
        "order.status_changed": ["https://app.example/hooks/orders", "https://crm.example/in"],
        "notifications": ["https://app.example/hooks/notify"],
    }
    run = run_stack("prod", {"pipeline:topicSubscribers": subscribers})
    topics = {
        r.inputs["name"]: r.inputs["endpoints"]
        for r in run.of_type("upstash:index/qStashTopicV2:QStashTopicV2")
    }
    assert topics["salla-pipeline-prod-event.order.created"] == subscribers["order.created"]
    assert (
        topics["salla-pipeline-prod-event.order.status_changed"]
        == subscribers["order.status_changed"]
    )
    assert not any("event.cart" in name for name in topics)  # no subscriber, no URL group
    assert run.exports["event_topics"] == {
        "order.created": "salla-pipeline-prod-event.order.created",
        "order.status_changed": "salla-pipeline-prod-event.order.status_changed",
    }
    assert run.exports["event_schema_version"] == "1"
    for role in ("-worker",):
        variables = run.named(FUNCTION, role).props["environment"].variables
        assert (
            resolve(variables["DOMAIN_EVENTS"])
            == "order.created,order.status_changed,notifications"
        )


def test_an_unknown_subscription_is_refused_naming_it():
    from pulumi import RunError

    with pytest.raises(RunError, match=r"order\.shipped"):
        run_stack("prod", {"pipeline:topicSubscribers": {"order.shipped": ["https://x.example"]}})


def test_notifications_subscribers_get_the_sync_and_dlq_alerts_copied():
    run = run_stack(
        "prod",
        {
            "pipeline:topicSubscribers": {"notifications": ["https://app.example/notify"]},
            "pipeline:dlqAlertThreshold": 25,
        },
    )
    variables = run.named(FUNCTION, "-worker").props["environment"].variables
    assert resolve(variables["DOMAIN_EVENTS"]) == "notifications"
    assert resolve(variables["DLQ_ALERT_THRESHOLD"]) == "25"


# The raw archive bucket (issue 15): outside the warehouse, immutable in prod, write-only grant.
ARCHIVE = "aws:s3/bucket:Bucket"


def test_prod_archive_is_locked_encrypted_private_and_tiered(prod):
    bucket = prod.one(ARCHIVE)
    assert bucket.inputs["bucket"] == "salla-pipeline-prod-raw-archive"
    assert bucket.inputs["objectLockEnabled"] is True and bucket.protect
    lock = prod.one("aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration")
    assert lock.inputs["rule"]["defaultRetention"] == {"mode": "GOVERNANCE", "days": 365}
    versioning = prod.one("aws:s3/bucketVersioning:BucketVersioning")
    assert versioning.inputs["versioningConfiguration"]["status"] == "Enabled"
    [rule] = prod.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    ).inputs["rules"]
    default = rule["applyServerSideEncryptionByDefault"]
    assert default["sseAlgorithm"] == "aws:kms"
    assert default["kmsMasterKeyId"].endswith(":key/salla-pipeline-prod-archive-key")
    blocked = prod.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert all(
        blocked[k]
        for k in (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        )
    )
    policy = json.loads(resolve(prod.one("aws:s3/bucketPolicy:BucketPolicy").props["policy"]))
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    [tier] = prod.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").inputs[
        "rules"
    ]
    assert tier["transitions"] == [{"days": 30, "storageClass": "STANDARD_IA"}]
    assert tier["filter"] == {"prefix": "raw/"}
    assert prod.exports["raw_archive_url"] == "s3://salla-pipeline-prod-raw-archive/raw"


def test_the_functions_may_only_create_archive_objects(prod):
    grant = prod.named("aws:iam/rolePolicy:RolePolicy", "archive-writer")
    statements = json.loads(resolve(grant.props["policy"]))["Statement"]
    actions = sorted(a for s in statements for a in s["Action"])
    assert actions == ["kms:Encrypt", "kms:GenerateDataKey", "s3:PutObject"]
    [put] = [s for s in statements if s["Action"] == ["s3:PutObject"]]
    assert put["Resource"] == ["arn:aws:s3:::salla-pipeline-prod-raw-archive/raw/*"]
    for function in prod.of_type(FUNCTION):
        variables = function.props["environment"].variables
        if "RAW_ARCHIVE_URL" in variables:
            url = resolve(variables["RAW_ARCHIVE_URL"])
            assert url == "s3://salla-pipeline-prod-raw-archive/raw"
            assert resolve(variables["RAW_ARCHIVE_ACCESS_KEY_ID"]) == ""  # the role, no key


def test_dev_archive_has_its_own_bucket_without_lock_or_protection(dev):
    bucket = dev.one(ARCHIVE)
    assert bucket.inputs["bucket"] == "salla-pipeline-dev-raw-archive"
    assert not bucket.inputs.get("objectLockEnabled") and not bucket.protect
    assert not dev.of_type("aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration")
    suffixed = run_stack("dev", {"pipeline:archive": {"bucketSuffix": "123456789012"}})
    assert suffixed.one(ARCHIVE).inputs["bucket"] == "salla-pipeline-dev-raw-archive-123456789012"


def test_vercel_writes_the_archive_with_a_write_only_user_key_kept_secret():
    run = vercel_stack()
    user_policy = run.one("aws:iam/userPolicy:UserPolicy")
    statements = json.loads(resolve(user_policy.props["policy"]))["Statement"]
    assert sorted(a for s in statements for a in s["Action"]) == [
        "kms:Encrypt",
        "kms:GenerateDataKey",
        "s3:PutObject",
    ]
    variables = {
        v.inputs["key"]: v
        for v in run.of_type("vercel:index/projectEnvironmentVariable:ProjectEnvironmentVariable")
    }
    secret = variables["RAW_ARCHIVE_SECRET_ACCESS_KEY"]
    assert secret.inputs["sensitive"] is True
    assert resolve(secret.props["value"]) == "archive-writer-secret-value"
    assert resolve(variables["RAW_ARCHIVE_REGION"].props["value"]) == "eu-central-1"
