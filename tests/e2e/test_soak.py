"""The crash soak's short version (bench/soak.py): one minute of signed webhooks with
duplicates and a historical sync while the service, the local queue server and both are
SIGKILLed at random and restarted. Nothing accepted may be lost or doubled, and the sync must
complete with exactly the emulated store's data."""

import pytest

from bench.soak import soak

pytestmark = pytest.mark.slow


async def test_a_minute_of_random_kills_loses_and_doubles_nothing(tmp_path):
    result = await soak(60, tmp_path, seed=3)
    assert sum(result.kills.values()) >= 4, result.kills
    assert result.accepted > 200
    assert result.problems == []
    assert result.lost == 0 and result.duplicated == 0
    assert result.webhook_exact and result.sync_exact and result.sync_status == "COMPLETED"
