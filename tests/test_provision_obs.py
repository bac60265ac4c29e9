"""``up`` checks the Alluxio under-FS bucket with the nodes' own keys before it creates anything.

Against moto's S3 server on loopback with IAM authentication on: a missing bucket, an unknown access key, a
wrong secret key and keys without rights each stop ``up`` before the first OTC call, with a message saying
which; ``--create-bucket`` creates a missing bucket and goes on.
"""

from __future__ import annotations

import itertools
import socket
from typing import Any

import pytest

from tests.support.fake_otc import FakeOtc
from tests.support.moto_s3 import S3Server
from tests.support.provision_env import Env, cluster_document

NAMES = itertools.count(1)


@pytest.fixture
def env(tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Env:
    return Env(tmp_path, capsys, monkeypatch)


def write(env: Env, endpoint: str, bucket: str, access_key: str, secret_key: str, **extra: Any) -> None:
    alluxio = {"version": "2.9", "root_ufs": f"s3://{bucket}/alluxio", "s3_endpoint": endpoint}
    credentials = {"source": "keys", "access_key_id": access_key, "secret_access_key": secret_key}
    env.write_cluster(cluster_document(alluxio=alluxio, credentials=credentials, **extra))


def bucket_name(create: S3Server | None = None) -> str:
    name = f"obs-check-{next(NAMES)}"
    if create is not None:
        create.create_bucket(name)
    return name


def assert_stopped_before_anything(env: Env, cloud: FakeOtc) -> None:
    assert cloud.calls == [], "no OTC call (not even a token) may happen before the bucket check passed"
    assert not env.state_file.exists()


def test_a_missing_bucket_stops_up_before_anything_is_created(env: Env, cloud: FakeOtc, s3: S3Server) -> None:
    bucket = bucket_name()
    write(env, s3.endpoint, bucket, s3.access_key, s3.secret_key)

    result = env.run("up")

    assert result.code == 1
    assert result.error_line() == (f"provision-min: OBS bucket {bucket} (alluxio.root_ufs) does not exist at "
                                   f"{s3.endpoint}: create it, or run up --create-bucket")
    assert_stopped_before_anything(env, cloud)
    assert not s3.bucket_exists(bucket)


def test_an_unknown_access_key_stops_up_and_says_so(env: Env, cloud: FakeOtc, s3: S3Server) -> None:
    write(env, s3.endpoint, bucket_name(s3), "AKIAUNKNOWNKEY000001", s3.secret_key)

    result = env.run("up")

    assert result.code == 1
    line = result.error_line()
    assert "OBS does not know the access key in credentials.access_key_id" in line
    assert "InvalidAccessKeyId" in line
    assert s3.secret_key not in result.err + result.out
    assert_stopped_before_anything(env, cloud)


def test_a_wrong_secret_key_stops_up_and_says_so(env: Env, cloud: FakeOtc, s3: S3Server) -> None:
    wrong = "wrong-secret-key-0000000000000000000000"
    write(env, s3.endpoint, bucket_name(s3), s3.access_key, wrong)

    result = env.run("up")

    assert result.code == 1
    line = result.error_line()
    assert "credentials.secret_access_key does not belong to credentials.access_key_id" in line
    assert "SignatureDoesNotMatch" in line
    assert wrong not in result.err + result.out
    assert_stopped_before_anything(env, cloud)


def test_keys_that_may_not_list_the_bucket_stop_up(env: Env, cloud: FakeOtc, s3: S3Server) -> None:
    bucket = bucket_name(s3)
    write(env, s3.endpoint, bucket, s3.denied_access_key, s3.denied_secret_key)

    result = env.run("up")

    assert result.code == 1
    assert f"the keys in credentials may not list bucket {bucket}" in result.error_line()
    assert_stopped_before_anything(env, cloud)


def test_an_unreachable_obs_endpoint_stops_up(env: Env, cloud: FakeOtc, s3: S3Server,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("provision_min.obs.ATTEMPTS", 1)  # no retry back-off: nothing sleeps in tests
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    write(env, closed, bucket_name(), s3.access_key, s3.secret_key)

    result = env.run("up")

    assert result.code == 1
    assert result.error_line().startswith(f"provision-min: cannot reach OBS at {closed} to check bucket")
    assert_stopped_before_anything(env, cloud)


def test_create_bucket_creates_it_and_up_goes_on(env: Env, cloud: FakeOtc, s3: S3Server) -> None:
    bucket = bucket_name()
    write(env, s3.endpoint, bucket, s3.access_key, s3.secret_key)

    result = env.run("up", "--create-bucket")

    assert result.code == 0, result.err
    assert s3.bucket_exists(bucket)
    assert f"OBS: bucket {bucket} created at {s3.endpoint}" in result.lines
    assert cloud.resources()["as_groups"] == 1
    # The next up finds the bucket and does not create it again.
    again = env.run("up", "--create-bucket")
    assert again.code == 0 and f"OBS: bucket {bucket} exists at {s3.endpoint} and the keys can list it" in again.lines


def test_agency_credentials_cannot_be_checked_and_up_says_so(env: Env, cloud: FakeOtc) -> None:
    env.write_cluster(cluster_document(
        alluxio={"version": "2.9", "root_ufs": "s3://eo-data/alluxio"}, credentials={"source": "agency"}))

    result = env.run("up")

    assert result.code == 0, result.err
    assert "OBS: bucket eo-data not checked: credentials.source is agency" in result.out
    assert cloud.resources()["masters"] == 1
