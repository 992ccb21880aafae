"""The Pulumi program under Pulumi's unit-test mocks, with the committed stack files."""

import json

import pytest

from infra import bundle
from shared.contract import env_var_names, secret_env_var_names
from shared.topics import ALL_TOPICS, PROCESS_EVENT_PATH, WEBHOOK_PATH
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
            "aws:lambda/function:Function",
            "aws:lambda/permission:Permission",
            "clickhouse:index/service:Service",
            "pinecone:index/index:Index",
            "pulumi-python:dynamic:Resource",
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
    }


def test_every_stateful_prod_resource_is_protected(prod):
    stateful = (
        "clickhouse:index/service:Service",
        "upstash:index/redisDatabase:RedisDatabase",
        "random:index/randomBytes:RandomBytes",
        "pinecone:index/index:Index",
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
    assert {r.typ for r in dev.resources} == {r.typ for r in prod.resources}
    assert dev.one("aws:lambda/function:Function").inputs["reservedConcurrentExecutions"] == 10
    assert dev.one("clickhouse:index/service:Service").inputs["idleScaling"] is True


def test_dev_is_not_protected_so_it_can_be_torn_down(dev):
    assert not dev.one("clickhouse:index/service:Service").protect


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


def test_function_environment_is_exactly_the_contract_with_secrets_secret(prod):
    function = prod.one("aws:lambda/function:Function")
    variables = function.props["environment"].variables
    assert sorted(variables) == sorted(env_var_names())
    for name, value in variables.items():
        assert is_secret(value) == (name in secret_env_var_names()), name
    resolved = {name: resolve(value) for name, value in variables.items()}
    assert resolved["PIPELINE_PUBLIC_URL"] == resolve(prod.exports["pipeline_endpoint"])
    assert resolved["QSTASH_TOKEN"] == SECRETS["pipeline:qstashToken"]
    assert resolved["PIPELINE_ENVIRONMENT"] == "production"
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
    variables = run.one("aws:lambda/function:Function").props["environment"].variables
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
    variables = run.one("aws:lambda/function:Function").props["environment"].variables
    assert resolve(variables["RAG_ENABLED"]) == "false"
    assert resolve(variables["PINECONE_API_KEY"]) == ""


def test_the_environment_is_a_valid_production_configuration(prod):
    from shared.contract import PipelineSettings

    variables = prod.one("aws:lambda/function:Function").props["environment"].variables
    values = {name.lower(): resolve(value) for name, value in variables.items()}
    settings = PipelineSettings(**values)  # the service would start with exactly this
    assert settings.redis_url is not None and settings.qstash_retries == 5


def test_lambda_runs_python312_on_arm64_with_least_privilege(prod):
    function = prod.one("aws:lambda/function:Function")
    assert function.inputs["runtime"] == "python3.12" and function.inputs["architectures"] == [
        "arm64"
    ]
    assert function.inputs["handler"] == bundle.HANDLER
    assert function.inputs["reservedConcurrentExecutions"] == 100
    assert function.inputs["vpcConfig"]["subnetIds"]
    policy = json.loads(prod.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    actions = {a for statement in policy["Statement"] for a in statement["Action"]}
    assert "logs:CreateLogGroup" not in actions and not any("*" in a for a in actions)
    log_statement = policy["Statement"][0]
    assert log_statement["Resource"] != "*"
    assert prod.one("aws:cloudwatch/logGroup:LogGroup").inputs["retentionInDays"] == 90


def test_qstash_topics_deliver_to_the_deployed_url(prod):
    raw = prod.one("upstash:index/qStashTopicV2:QStashTopicV2")
    assert raw.inputs["name"] == "raw-events"
    assert raw.inputs["endpoints"] == [prod.exports["pipeline_endpoint"] + PROCESS_EVENT_PATH]
    names = {
        r.inputs["name"] for r in prod.resources if r.typ.startswith("upstash:index/qStashTopic")
    }
    assert names == set(ALL_TOPICS)


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


def test_database_users_are_managed_with_secret_credentials(prod):
    access = prod.one("pulumi-python:dynamic:Resource")
    for key in ("admin_dsn", "writer_password", "reader_password"):
        assert is_secret(access.props[key]), key


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


def test_vercel_target_uses_the_project_url_and_sensitive_variables():
    run = run_stack(
        "prod",
        {
            "pipeline:deployTarget": "vercel",
            "pipeline:vercel": {"projectName": "salla-pipeline", "region": "fra1"},
            "pipeline:clickhouse": {
                "cloudProvider": "aws",
                "region": "eu-central-1",
                "allowedIps": ["76.76.21.0/24"],
            },
        },
    )
    assert run.exports["pipeline_endpoint"] == "https://salla-pipeline.vercel.app"
    variables = run.of_type("vercel:index/projectEnvironmentVariable:ProjectEnvironmentVariable")
    assert sorted(v.inputs["key"] for v in variables) == sorted(env_var_names())
    for variable in variables:
        assert variable.inputs["sensitive"] == (variable.inputs["key"] in secret_env_var_names())
    assert not run.of_type("aws:lambda/function:Function")
    assert run.one("vercel:index/deployment:Deployment").inputs["production"] is True


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
