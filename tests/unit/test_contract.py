"""The environment-variable contract: typed, validated, one clear line per problem."""

from pathlib import Path

import pytest
from data_pipeline.adapters.token_cipher import TokenCipher

from shared.contract import (
    ConfigurationError,
    PipelineSettings,
    env_var_names,
    load_settings,
    secret_env_var_names,
)
from shared.dev_credentials import DEV_QSTASH_TOKEN

KEY = TokenCipher.generate_key()
VALID = {
    "PIPELINE_PUBLIC_URL": "https://pipeline.example.com",
    "PIPELINE_API_KEY": "k" * 32,
    "SALLA_WEBHOOK_SECRET": "s" * 32,
    "QSTASH_TOKEN": "qstash-real-token",
    "QSTASH_CURRENT_SIGNING_KEY": "sig_current_real",
    "QSTASH_NEXT_SIGNING_KEY": "sig_next_real",
    "CLICKHOUSE_URL": "https://writer:pw@abc.clickhouse.cloud:8443",
    "TOKEN_ENCRYPTION_KEY": KEY,
    "SALLA_CLIENT_ID": "salla-app-client-id",
    "SALLA_CLIENT_SECRET": "salla-app-client-secret",
    "REDIS_URL": "rediss://default:pw@eu1-redis.upstash.io:6379",
    "RAW_ARCHIVE_URL": "s3://salla-pipeline-prod-raw-archive/raw",
}


@pytest.fixture
def env(monkeypatch):
    for name in env_var_names():
        monkeypatch.delenv(name, raising=False)
    for name, value in VALID.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_a_complete_production_environment_loads(env):
    settings = load_settings()
    assert settings.clickhouse_database == "analytics" and settings.qstash_retries == 3
    assert settings.delivery_url("/api/queue/process-event") == (
        "https://pipeline.example.com/api/queue/process-event"
    )
    assert not settings.uses_embedded_state
    assert settings.topic("raw-events") == "raw-events"  # no prefix by default
    assert settings.pipeline_role == "all" and settings.pipeline_metrics == "prometheus"


@pytest.mark.parametrize(
    ("changes", "refusal"),
    [
        ({"REDIS_URL": None}, "REDIS_URL is required in production"),
        ({"CLICKHOUSE_URL": "chdb:///var/data/clickhouse"}, "CLICKHOUSE_URL must be a ClickHouse"),
        ({"CLICKHOUSE_URL": "chdb://memory"}, "chdb:// is local-only"),
        ({"RAW_ARCHIVE_URL": None}, "RAW_ARCHIVE_URL must be s3://bucket/prefix in production"),
        ({"RAW_ARCHIVE_URL": "file:///var/archive"}, "RAW_ARCHIVE_URL must be s3://"),
    ],
)
def test_production_refuses_local_only_backends_naming_the_variable(env, changes, refusal):
    for name, value in changes.items():
        if value is None:
            env.delenv(name)
        else:
            env.setenv(name, value)
    with pytest.raises(ConfigurationError, match=refusal) as error:
        load_settings()
    assert "\n" not in str(error.value)


def test_local_and_test_environments_keep_their_embedded_defaults(env):
    env.delenv("REDIS_URL")
    env.setenv("CLICKHOUSE_URL", "chdb:///tmp/x/clickhouse")
    for environment in ("local", "test"):
        env.setenv("PIPELINE_ENVIRONMENT", environment)
        assert load_settings().uses_embedded_state


def test_a_deployment_scopes_its_queue_names(env):
    env.setenv("QSTASH_TOPIC_PREFIX", "salla-pipeline-prod-")
    env.setenv("QSTASH_FLOW_PARALLELISM_SYNC", "0")
    settings = load_settings()
    assert settings.topic("raw-events") == "salla-pipeline-prod-raw-events"
    assert settings.flow_parallelism == {"events": 64, "sync": 0, "embed": 8}


def test_missing_variables_are_named_on_one_line(env):
    env.delenv("QSTASH_TOKEN")
    env.delenv("CLICKHOUSE_URL")
    with pytest.raises(ConfigurationError) as error:
        load_settings()
    message = str(error.value)
    assert "\n" not in message
    assert "QSTASH_TOKEN is required" in message and "CLICKHOUSE_URL is required" in message


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("CLICKHOUSE_URL", "ftp://host", "CLICKHOUSE_URL"),
        ("CLICKHOUSE_URL", "chdb://./relative", "CLICKHOUSE_URL"),
        ("CLICKHOUSE_DATABASE", "analytics; DROP DATABASE x", "CLICKHOUSE_DATABASE"),
        ("REDIS_URL", "http://redis", "REDIS_URL"),
        ("TOKEN_ENCRYPTION_KEY", "not-a-fernet-key", "TOKEN_ENCRYPTION_KEY"),
        ("QSTASH_RETRIES", "99", "QSTASH_RETRIES"),
        ("QSTASH_RETRIES", "three", "QSTASH_RETRIES"),
        ("SALLA_WEBHOOK_STRATEGY", "none", "SALLA_WEBHOOK_STRATEGY"),
        ("PIPELINE_PUBLIC_URL", "not a url", "PIPELINE_PUBLIC_URL"),
        ("PIPELINE_ENVIRONMENT", "staging", "PIPELINE_ENVIRONMENT"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL"),
        ("QSTASH_TOPIC_PREFIX", "prod raw/", "QSTASH_TOPIC_PREFIX"),
        ("QSTASH_FLOW_PARALLELISM_EVENTS", "-1", "QSTASH_FLOW_PARALLELISM_EVENTS"),
        ("PIPELINE_ROLE", "everything", "PIPELINE_ROLE"),
        ("PIPELINE_METRICS", "statsd", "PIPELINE_METRICS"),
        ("PIPELINE_DEPLOYMENT", "Prod EU", "PIPELINE_DEPLOYMENT"),
    ],
)
def test_malformed_values_fail_naming_the_variable(env, name, value, expected):
    env.setenv(name, value)
    with pytest.raises(ConfigurationError, match=expected) as error:
        load_settings()
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("QSTASH_TOKEN", DEV_QSTASH_TOKEN, "public QStash dev credential"),
        ("SALLA_WEBHOOK_SECRET", "short", "at least 16"),
        ("PIPELINE_API_KEY", "short", "at least 16"),
        ("PIPELINE_PUBLIC_URL", "http://pipeline.example.com", "https"),
    ],
)
def test_production_refuses_development_credentials(env, name, value, reason):
    env.setenv(name, value)
    with pytest.raises(ConfigurationError, match=f"{name}.*{reason}"):
        load_settings()
    env.setenv("PIPELINE_ENVIRONMENT", "local")
    assert load_settings()  # the same values are fine on a laptop


def test_secrets_never_appear_in_the_settings_repr(env):
    rendered = repr(load_settings()) + str(load_settings().model_dump())
    for secret in ("k" * 32, "s" * 32, "qstash-real-token", "pw", KEY):
        assert secret not in rendered


def test_the_contract_names_its_secrets():
    secrets = secret_env_var_names()
    assert {
        "QSTASH_TOKEN",
        "CLICKHOUSE_URL",
        "REDIS_URL",
        "TOKEN_ENCRYPTION_KEY",
        "SALLA_WEBHOOK_SECRET",
        "PIPELINE_API_KEY",
    } <= secrets
    assert "CLICKHOUSE_DATABASE" not in secrets and "PIPELINE_PUBLIC_URL" not in secrets
    assert set(env_var_names()) == {name.upper() for name in PipelineSettings.model_fields}


def test_every_variable_is_documented():
    documented = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    missing = [name for name in env_var_names() if f"`{name}`" not in documented]
    assert missing == []


def test_rag_is_off_until_an_embeddings_endpoint_is_configured(env):
    assert not load_settings().rag_active
    env.setenv("OPENAI_API_KEY", "sk-real")
    env.setenv("PINECONE_API_KEY", "pc-real")
    env.setenv("PINECONE_INDEX", "salla-vectors")
    settings = load_settings()
    assert settings.rag_active and settings.vector_dimensions == 1536
    env.setenv("RAG_ENABLED", "false")
    assert not load_settings().rag_active


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"OPENAI_API_KEY": "sk-real"}, "PINECONE_API_KEY is required in production"),
        ({"RAG_ENABLED": "true", "PINECONE_API_KEY": "pc"}, "OPENAI_API_KEY is required"),
        (
            {"OPENAI_API_KEY": "sk", "PINECONE_API_KEY": "pc"},
            "PINECONE_INDEX or PINECONE_HOST is required",
        ),
        (
            {
                "OPENAI_API_KEY": "sk",
                "EMBEDDING_MODEL": "my-model",
                "PINECONE_API_KEY": "pc",
                "PINECONE_HOST": "https://x.pinecone.io",
            },
            "EMBEDDING_DIMENSIONS is required for model 'my-model'",
        ),
        ({"EMBEDDING_DIMENSIONS": "4"}, "EMBEDDING_DIMENSIONS"),
        ({"OPENAI_BASE_URL": "not a url"}, "OPENAI_BASE_URL"),
    ],
)
def test_rag_configuration_errors_name_the_variable(env, values, expected):
    for name, value in values.items():
        env.setenv(name, value)
    with pytest.raises(ConfigurationError, match=expected):
        load_settings()


def test_blank_rag_variables_mean_unset(env):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "EMBEDDING_DIMENSIONS", "PINECONE_API_KEY"):
        env.setenv(name, "")
    env.setenv("RAG_ENABLED", "")
    assert not load_settings().rag_active


@pytest.mark.parametrize(
    "url", ["http://bucket/x", "s3:///no-bucket", "file://relative/path", "archive", "ftp://x"]
)
def test_a_raw_archive_url_it_cannot_use_is_refused_naming_the_variable(env, url):
    env.setenv("PIPELINE_ENVIRONMENT", "local")
    env.setenv("RAW_ARCHIVE_URL", url)
    with pytest.raises(ConfigurationError, match=r"(?i)raw_archive_url"):
        load_settings()


def test_the_local_archive_defaults_to_the_data_dir(env, tmp_path):
    env.setenv("PIPELINE_ENVIRONMENT", "local")
    env.delenv("RAW_ARCHIVE_URL")
    env.setenv("PIPELINE_DATA_DIR", str(tmp_path))
    assert load_settings().archive_url == (tmp_path / "archive").as_uri()
