"""Checks before anything is created (issue 13): the flavors against the cloud, the agents' RAM disks against the
agent flavor's memory, the nodes' S3 keys from an environment variable or a 0600 file, and no secret in any
error, log or output of ``provision-min``.

Bad input is one line naming the field, exit 2, and nothing created (only GET calls were made).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provision_min import config
from tests.support.fake_otc import FakeOtc
from tests.support.provision_env import Env, cluster_document

ACCESS_KEY = "CHECKSACCESSKEY00001"
SECRET_KEY = "checks-secret/access+key-0000000000000"


@pytest.fixture
def env(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Env:
    return Env(tmp_path, capsys, monkeypatch)


def no_secret_in(result_text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in result_text, secret


# --- flavors and RAM disks, with credentials --------------------------------------------------------------


def test_plan_asks_the_zone_for_its_flavors(env: Env, cloud: FakeOtc) -> None:
    env.write_cluster(cluster_document())
    result = env.run("plan")
    assert result.code == 0, result.err
    asked = [c for c in cloud.calls if c.path == "/cloudservers/flavors"]
    assert len(asked) == 1 and asked[0].method == "GET" and asked[0].query == {"availability_zone": "eu-de-02"}


@pytest.mark.parametrize(("changes", "message"), [
    ({"agent_flavor": "s3.2xlarge.16"}, "agent_flavor: flavor 's3.2xlarge.16' is not offered in eu-de-02 "
                                        "(of that type: s3.2xlarge.8, s3.large.2, s3.medium.1, s3.xlarge.4)"),
    ({"master_flavor": "m9.huge.1"}, "master_flavor: flavor 'm9.huge.1' is not offered in eu-de-02"),
    ({"agent_flavor": "s3.medium.1"}, "agent_flavor: 1GB leaves no memory for Mesos tasks"),
    ({"alluxio": {**cluster_document()["alluxio"], "worker_ramdisk": "60GB"}},
     "alluxio.worker_ramdisk: 60GB does not fit: this node has 64GB"),
])
def test_plan_refuses_flavors_the_zone_lacks_and_ram_disks_they_cannot_hold(
        env: Env, cloud: FakeOtc, changes: dict[str, object], message: str) -> None:
    path = env.write_cluster(cluster_document(**changes))
    offline = env.run("plan", "--offline")
    assert offline.code == 0, offline.err  # only the cloud knows its flavors

    result = env.run("plan")
    assert result.code == 2 and result.out == ""
    line = result.error_line()
    assert line.startswith(f"provision-min: {path}: ") and message in line, line
    assert [x for x in result.err.splitlines() if not x.startswith("{")] == [line]  # one line (logs are JSON)
    assert cloud.methods() <= {"GET", "POST"} and cloud.count("POST", "ecs") == 0 and cloud.count("POST", "vpc") == 0


def test_a_zone_without_the_flavor_is_refused(env: Env, cloud: FakeOtc) -> None:
    env.write_cluster(cluster_document())
    for entry in cloud.flavors:
        if entry["name"] == "s3.2xlarge.8":
            entry["os_extra_specs"]["cond:operation:az"] = "eu-de-01(normal)"
    result = env.run("plan")
    assert result.code == 2
    assert "agent_flavor: flavor 's3.2xlarge.8' is not offered in eu-de-02" in result.error_line()


# --- the nodes' S3 keys out of the cluster file ------------------------------------------------------------


def keys_from(env: Env, **credentials: str) -> dict[str, object]:
    return cluster_document(credentials={"source": "keys", **credentials})


def test_keys_from_an_environment_variable_and_a_0600_file(env: Env) -> None:
    secret_file = env.home / ".config" / "provision-min" / "obs.secret"
    secret_file.parent.mkdir(parents=True)
    secret_file.write_text(SECRET_KEY + "\n")
    secret_file.chmod(0o600)
    path = env.write_cluster(keys_from(env, access_key_id_env="OBS_ACCESS_KEY_ID",
                                       secret_access_key_file="~/.config/provision-min/obs.secret"))
    variables = {**env.vars, "OBS_ACCESS_KEY_ID": ACCESS_KEY}

    loaded = config.load(path, variables)
    credentials = loaded.user_data("agent", "s" * 43)["credentials"]
    assert credentials == {"source": "keys", "access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY}

    relative = env.work / "keys" / "obs.secret"  # relative to the cluster file
    relative.parent.mkdir()
    relative.write_text(SECRET_KEY)
    relative.chmod(0o600)
    env.write_cluster(keys_from(env, access_key_id_env="OBS_ACCESS_KEY_ID", secret_access_key_file="keys/obs.secret"))
    result = env.run("plan", "--offline", env=variables)
    assert result.code == 0, result.err
    no_secret_in(result.out + result.err, ACCESS_KEY, SECRET_KEY)


def test_a_key_file_others_can_read_is_refused(env: Env) -> None:
    secret_file = env.work / "obs.secret"
    secret_file.write_text(SECRET_KEY)
    secret_file.chmod(0o644)
    env.write_cluster(keys_from(env, access_key_id=ACCESS_KEY, secret_access_key_file="obs.secret"))
    result = env.run("plan", "--offline")
    assert result.code == 2 and result.out == ""
    line = result.error_line()
    assert "credentials.secret_access_key_file: " in line and "accessible by group/others (mode 0644)" in line
    assert f"chmod 600 {secret_file}" in line
    no_secret_in(result.err, SECRET_KEY)


@pytest.mark.parametrize(("content", "message"), [("", "is empty"), ("\n", "is empty")])
def test_an_empty_key_file_is_refused(env: Env, content: str, message: str) -> None:
    secret_file = env.work / "obs.secret"
    secret_file.write_text(content)
    secret_file.chmod(0o600)
    env.write_cluster(keys_from(env, access_key_id=ACCESS_KEY, secret_access_key_file=str(secret_file)))
    result = env.run("plan", "--offline")
    assert result.code == 2 and f"credentials.secret_access_key_file: {secret_file} {message}" in result.error_line()


def test_an_empty_variable_is_refused(env: Env) -> None:
    env.write_cluster(keys_from(env, access_key_id_env="OBS_ACCESS_KEY_ID", secret_access_key=SECRET_KEY))
    result = env.run("plan", "--offline", env={**env.vars, "OBS_ACCESS_KEY_ID": ""})
    assert result.code == 2
    assert result.error_line().endswith(
        "credentials.access_key_id_env: the environment variable OBS_ACCESS_KEY_ID is not set (or empty)")
    no_secret_in(result.err, SECRET_KEY)


# --- no secret in any error -------------------------------------------------------------------------------


def test_an_endpoint_with_credentials_is_not_echoed(env: Env) -> None:
    document = cluster_document()
    document["alluxio"]["s3_endpoint"] = f"https://{ACCESS_KEY}:{SECRET_KEY}@obs.eu-de.otc.t-systems.com"
    env.write_cluster(document)
    for command in (["plan", "--offline"], ["up"], ["status"]):
        result = env.run(*command)
        assert result.code == 2
        assert "alluxio.s3_endpoint: 'https://***@obs.eu-de.otc.t-systems.com' must not carry credentials" in \
            result.error_line()
        no_secret_in(result.out + result.err, ACCESS_KEY, SECRET_KEY)


def test_a_known_secret_in_a_bad_value_is_masked(env: Env) -> None:
    # The secret key from the environment, pasted by mistake into a flag: the error names the flag, not the key.
    document = keys_from(env, access_key_id=ACCESS_KEY, secret_access_key_env="OBS_SECRET_ACCESS_KEY")
    document["mesos"] = {**document["mesos"], "agent_flags": {"gc_delay": "SECRETKEYFROMENV0000000000"}}
    env.write_cluster(document)
    result = env.run("plan", "--offline", env={**env.vars, "OBS_SECRET_ACCESS_KEY": "SECRETKEYFROMENV0000000000"})
    assert result.code == 2 and "mesos.agent_flags.gc_delay: expected a duration" in result.error_line()
    no_secret_in(result.out + result.err, "SECRETKEYFROMENV0000000000")
    assert "'***'" in result.error_line()


def test_the_example_shows_keys_out_of_the_cluster_file() -> None:
    from tests.support.provision_env import EXAMPLE

    text = EXAMPLE.read_text()
    assert "access_key_id_env:" in text and "secret_access_key_file:" in text
    assert json.dumps(cluster_document()["credentials"])  # the example itself still loads inline keys
