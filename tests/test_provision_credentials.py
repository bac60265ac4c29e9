"""provision-min and the operator credential: made at ``up`` into the 0600 state file, never into user-data;
an older state file gets one from ``migrate-credentials`` (which changes nothing else), and the printed next
step pipes it to a master's ``bootstrap-agent config migrate`` without showing it."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.support.fake_otc import FakeOtc
from tests.support.provision_env import Env, cluster_document


@pytest.fixture
def env(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Env:
    desk = Env(tmp_path, capsys, monkeypatch)
    desk.write_cluster(cluster_document(alluxio=None, credentials=None))
    return desk


def test_up_keeps_an_operator_credential_in_the_state_file_only(env: Env, cloud: FakeOtc) -> None:
    result = env.run("up")
    assert result.code == 0, result.err
    state = json.loads(env.state_file.read_text())
    operator = state["operator_secret"]
    assert len(operator) >= 32 and operator != state["secret"]
    assert stat.S_IMODE(env.state_file.stat().st_mode) == 0o600
    user_data = json.dumps(cloud.user_data)
    assert operator not in user_data and state["secret"] in user_data  # the node credential, as before
    assert operator not in result.out + result.err


def test_migrate_credentials_adds_the_operator_credential_to_an_older_state_file(env: Env, cloud: FakeOtc) -> None:
    assert env.run("up").code == 0
    old = json.loads(env.state_file.read_text())
    del old["operator_secret"]  # as written before issue 14
    env.state_file.write_text(json.dumps(old))
    env.state_file.chmod(0o600)
    calls = len(cloud.calls)

    migrated = env.run("migrate-credentials")
    assert migrated.code == 0, migrated.err
    state = json.loads(env.state_file.read_text())
    assert len(state.pop("operator_secret")) >= 32 and state == old  # nothing else changed
    assert stat.S_IMODE(env.state_file.stat().st_mode) == 0o600
    assert f"jq -r .operator_secret {env.state_file} | ssh" in migrated.out
    assert "bootstrap-agent config migrate --operator-secret-file -" in migrated.out
    again = env.run("migrate-credentials")
    assert again.code == 0 and "already in" in again.out
    secret = json.loads(env.state_file.read_text())["operator_secret"]
    for run in (migrated, again):
        assert secret not in run.out + run.err and old["secret"] not in run.out + run.err
    assert len(cloud.calls) == calls  # no cloud API call


def test_migrate_credentials_without_a_state_file_is_refused(env: Env, cloud: FakeOtc) -> None:
    refused = env.run("migrate-credentials")
    assert refused.code == 2 and "no state file" in refused.err and len(refused.err.strip().splitlines()) == 1
    assert not env.state_file.exists()
