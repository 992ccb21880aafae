"""The deploy lock against DynamoDB, emulated by moto (AWS APIs cannot run here)."""

import sys

import boto3
import pytest
from moto import mock_aws

from infra.deploy import DeployLock, LeaseHeld, main, run_locked

TABLE = "pulumi-deploy-locks"


@pytest.fixture
def dynamodb(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("dynamodb")
        client.create_table(
            TableName=TABLE,
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
        )
        yield client


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def lock(client, holder, clock, ttl=600):
    return DeployLock(
        client,
        TABLE,
        "salla-data-pipeline/prod",
        holder=holder,
        ttl_seconds=ttl,
        clock=clock,
        operation="up",
    )


def test_acquire_contend_release(dynamodb):
    clock = Clock()
    alice, bob = lock(dynamodb, "alice", clock), lock(dynamodb, "bob", clock)
    alice.acquire()
    with pytest.raises(LeaseHeld, match="locked by alice \\(up\\) until"):
        bob.acquire()
    alice.acquire()  # re-entrant for the same holder
    alice.release()
    bob.acquire()
    assert (
        dynamodb.get_item(TableName=TABLE, Key={"LockID": {"S": alice.key}})["Item"]["Holder"]["S"]
        == "bob"
    )


def test_an_expired_lease_can_be_taken_over(dynamodb):
    clock = Clock()
    lock(dynamodb, "crashed-ci", clock, ttl=60).acquire()
    clock.now += 61
    lock(dynamodb, "next-run", clock).acquire()


def test_renewal_keeps_the_lease_alive_and_fails_once_lost(dynamodb):
    clock = Clock()
    alice = lock(dynamodb, "alice", clock, ttl=60)
    alice.acquire()
    clock.now += 50
    assert alice.renew()
    clock.now += 50  # 100 s after acquiring, but renewed at 50 s: still alive
    with pytest.raises(LeaseHeld):
        lock(dynamodb, "bob", clock).acquire()
    clock.now += 61
    lock(dynamodb, "bob", clock).acquire()
    assert not alice.renew()


def test_release_never_deletes_someone_elses_lease(dynamodb):
    clock = Clock()
    alice, bob = lock(dynamodb, "alice", clock), lock(dynamodb, "bob", clock)
    alice.acquire()
    bob.release()
    with pytest.raises(LeaseHeld):
        bob.acquire()


def test_the_wrapper_releases_after_success_and_failure(dynamodb):
    clock = Clock()
    ok = run_locked(
        lock(dynamodb, "ci-1", clock), [sys.executable, "-c", "pass"], heartbeat_seconds=5
    )
    failed = run_locked(
        lock(dynamodb, "ci-2", clock),
        [sys.executable, "-c", "raise SystemExit(4)"],
        heartbeat_seconds=5,
    )
    assert (ok, failed) == (0, 4)
    lock(dynamodb, "ci-3", clock).acquire()  # nothing left behind


def test_the_cli_refuses_while_another_deploy_holds_the_lease(dynamodb, capsys):
    DeployLock(dynamodb, TABLE, "salla-data-pipeline/prod", holder="someone-else").acquire()
    code = main(["up", "--stack", "prod", "--table", TABLE, "--pulumi", "true"])
    assert code == 3 and "locked by someone-else" in capsys.readouterr().err
    assert main(["preview", "--stack", "dev", "--table", TABLE, "--pulumi", "true"]) == 0
