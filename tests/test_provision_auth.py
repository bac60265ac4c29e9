"""Credentials like the OpenStack tools, a project-scoped token reused until it expires, endpoints from its catalog.

The cluster here has no Alluxio section, so no OBS check runs: these tests are about talking to the OTC API.
"""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path
from typing import Any

import pytest
import responses
import yaml

from provision_min.catalog import endpoints_from_catalog
from provision_min.credentials import load_auth
from provision_min.errors import InputError
from tests.support import fake_otc
from tests.support.fake_otc import FakeOtc
from tests.support.provision_env import Env, cluster_document


@pytest.fixture
def env(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Env:
    desk = Env(tmp_path, capsys, monkeypatch)
    desk.write_cluster(cluster_document(alluxio=None, credentials=None))
    return desk


def no_os_vars(env: Env) -> dict[str, str]:
    return {k: v for k, v in env.vars.items() if not k.startswith("OS_")}


def clouds_yaml(path: Path, clouds: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"clouds": clouds}))
    return path


def otc_cloud(**auth: Any) -> dict[str, Any]:
    entry = {"auth_url": "https://iam.eu-de.otc.t-systems.com:443/v3", "username": fake_otc.USER,
             "password": fake_otc.PASSWORD, "project_name": "eu-de", "user_domain_name": fake_otc.DOMAIN}
    entry.update(auth)
    return {"auth": {k: v for k, v in entry.items() if v is not None}, "region_name": "eu-de"}


def token_requests(cloud: FakeOtc) -> list[Any]:
    return [c.body for c in cloud.calls if c.service == "iam"]


# --- where credentials come from ---------------------------------------------------------------------------


def test_clouds_yaml_in_the_current_folder_with_cloud_option(env: Env, cloud: FakeOtc) -> None:
    clouds_yaml(env.work / "clouds.yaml", {"otc": otc_cloud(auth_url="https://iam.eu-de.otc.t-systems.com/v3")})

    result = env.run("status", "--cloud", "otc", env=no_os_vars(env))

    assert result.code == 1  # nothing exists yet: incomplete
    (body,) = token_requests(cloud)
    assert body["auth"]["identity"]["password"]["user"] == {
        "name": fake_otc.USER, "password": fake_otc.PASSWORD, "domain": {"name": fake_otc.DOMAIN}}
    assert body["auth"]["scope"] == {"project": {"name": "eu-de"}}


@pytest.mark.parametrize("how", ["--os-cloud", "OS_CLOUD"])
def test_os_cloud_option_and_variable_choose_among_several_clouds(env: Env, cloud: FakeOtc, how: str) -> None:
    clouds_yaml(env.home / ".config" / "openstack" / "clouds.yaml",
                {"other": otc_cloud(password="not-this-one"), "otc": otc_cloud()})
    vars_ = no_os_vars(env)
    if how == "OS_CLOUD":
        vars_["OS_CLOUD"] = "otc"
        result = env.run("status", env=vars_)
    else:
        result = env.run("status", "--os-cloud", "otc", env=vars_)

    assert result.code == 1, result.err
    (body,) = token_requests(cloud)
    assert body["auth"]["identity"]["password"]["user"]["password"] == fake_otc.PASSWORD


def test_os_variables_are_used_when_no_cloud_is_named(env: Env, cloud: FakeOtc) -> None:
    clouds_yaml(env.work / "clouds.yaml", {"a": otc_cloud(password="x"), "b": otc_cloud(password="y")})

    result = env.run("status")

    assert result.code == 1, result.err
    (body,) = token_requests(cloud)
    assert body["auth"]["identity"]["password"]["user"]["password"] == fake_otc.PASSWORD


def test_project_id_and_domain_id_from_variables(env: Env, cloud: FakeOtc) -> None:
    vars_ = dict(env.vars, OS_PROJECT_ID=fake_otc.PROJECT_ID, OS_USER_DOMAIN_ID="domain-id-42")
    del vars_["OS_USER_DOMAIN_NAME"]

    assert env.run("status", env=vars_).code == 1
    (body,) = token_requests(cloud)
    assert body["auth"]["scope"] == {"project": {"id": fake_otc.PROJECT_ID}}
    assert body["auth"]["identity"]["password"]["user"]["domain"] == {"id": "domain-id-42"}


def test_search_order_of_clouds_yaml(tmp_path: Path) -> None:
    cwd, home, etc = tmp_path / "cwd", tmp_path / "home", tmp_path / "etc"
    for folder in (cwd, home, etc):
        folder.mkdir()
    clouds_yaml(etc / "clouds.yaml", {"otc": otc_cloud(username="from-etc")})

    def who(env: dict[str, str] | None = None) -> str:
        return load_auth("otc", env or {}, region="eu-de", cwd=cwd, home=home, system_dir=etc).username

    assert who() == "from-etc"
    clouds_yaml(home / ".config" / "openstack" / "clouds.yaml", {"otc": otc_cloud(username="from-home")})
    assert who() == "from-home"
    clouds_yaml(cwd / "clouds.yaml", {"otc": otc_cloud(username="from-cwd")})
    assert who() == "from-cwd"
    special = clouds_yaml(tmp_path / "special.yaml", {"otc": otc_cloud(username="from-variable")})
    assert who({"OS_CLIENT_CONFIG_FILE": str(special)}) == "from-variable"


def test_password_may_stay_out_of_clouds_yaml(tmp_path: Path) -> None:
    clouds_yaml(tmp_path / "clouds.yaml", {"otc": otc_cloud(password=None)})
    auth = load_auth("otc", {"OS_PASSWORD": "from-env"}, region="eu-de", cwd=tmp_path, home=tmp_path,
                     system_dir=tmp_path / "none")
    assert auth.password == "from-env"
    assert auth.auth_url == "https://iam.eu-de.otc.t-systems.com/v3"
    assert "from-env" not in repr(auth)


@pytest.mark.parametrize(("setup", "message"), [
    ("none", "no OTC credentials: give --cloud NAME (or OS_CLOUD)"),
    ("unknown-cloud", "no cloud named 'otc' (defined: other)"),
    ("no-domain", "auth.user_domain_name (the OTC domain"),
    ("no-clouds-yaml", "cloud 'otc' requested but no clouds.yaml found"),
])
def test_missing_credentials_are_one_clear_line_and_no_call(env: Env, cloud: FakeOtc, setup: str,
                                                            message: str) -> None:
    vars_ = no_os_vars(env)
    if setup == "unknown-cloud":
        clouds_yaml(env.work / "clouds.yaml", {"other": otc_cloud()})
    if setup == "no-domain":
        clouds_yaml(env.work / "clouds.yaml", {"otc": otc_cloud(user_domain_name=None)})
    if setup != "none":
        vars_["OS_CLOUD"] = "otc"

    result = env.run("status", env=vars_)

    assert result.code == 2
    assert message in result.error_line()
    assert cloud.calls == []


def test_a_wrong_password_is_an_api_error_that_does_not_print_the_password(env: Env, cloud: FakeOtc) -> None:
    vars_ = dict(env.vars, OS_PASSWORD="wrong-password-123")

    result = env.run("up", env=vars_)

    assert result.code == 1
    assert result.error_line() == ("provision-min: OTC API error: HTTP 401 401: The username or password is wrong. "
                                   "(call: POST https://iam.eu-de.otc.t-systems.com/v3/auth/tokens)")
    assert "wrong-password-123" not in result.out + result.err
    assert not env.state_file.exists()


# --- the token ------------------------------------------------------------------------------------------------


def cache_files(env: Env) -> list[Path]:
    return sorted((env.root / "cache" / "provision-min").glob("token-*.json"))


def test_the_token_is_reused_by_later_commands_until_it_expires(env: Env, cloud: FakeOtc) -> None:
    env.run("status")
    env.run("status")
    env.run("up")
    env.run("status")

    assert len(token_requests(cloud)) == 1
    (cache,) = cache_files(env)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    # Ten minutes before it expires, a token is no longer used: the next command asks for a new one.
    record = json.loads(cache.read_text())
    record["expires_at"] = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=9)).isoformat()
    cache.write_text(json.dumps(record))
    assert env.run("status").code == 0
    assert len(token_requests(cloud)) == 2
    assert env.run("status").code == 0
    assert len(token_requests(cloud)) == 2


def test_a_token_the_api_rejects_is_replaced_once(env: Env, cloud: FakeOtc) -> None:
    assert env.run("status").code == 1
    cloud.revoke_tokens()

    result = env.run("status")

    assert result.code == 1 and "incomplete" in result.out
    assert len(token_requests(cloud)) == 2
    assert [c.status for c in cloud.calls if c.service != "iam"].count(401) == 1


def test_no_secret_reaches_the_logs(env: Env, cloud: FakeOtc) -> None:
    result = env.run("up", "--log-level", "debug")
    assert result.code == 0, result.err
    for token in cloud.tokens:
        assert token not in result.err + result.out
    assert fake_otc.PASSWORD not in result.err + result.out


# --- endpoints ------------------------------------------------------------------------------------------------


def test_endpoints_come_from_the_catalog(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    pid = fake_otc.PROJECT_ID
    catalog = {"vpc": "https://network.cloud.example/v1/%(project_id)s", "ecs": "https://compute.cloud.example",
               "as": "https://scaling.cloud.example/autoscaling-api/v1"}
    bases = {"vpc": f"https://network.cloud.example/v1/{pid}", "ecs": f"https://compute.cloud.example/v1/{pid}",
             "as": f"https://scaling.cloud.example/autoscaling-api/v1/{pid}"}
    env = Env(tmp_path, capsys, monkeypatch)
    env.write_cluster(cluster_document(alluxio=None, credentials=None))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        cloud = FakeOtc(catalog=catalog, bases=bases)
        cloud.install(rsps)

        result = env.run("up")

        assert result.code == 0, result.err
        hosts = {c.url.split("/")[2] for c in cloud.calls}
        assert hosts == {"iam.eu-de.otc.t-systems.com", "network.cloud.example", "compute.cloud.example",
                         "scaling.cloud.example", "smn.eu-de.otc.t-systems.com"}  # SMN: not in this catalog
        assert cloud.violations == []


def test_a_service_missing_from_the_catalog_falls_back_to_the_documented_host() -> None:
    catalog = [{"type": "vpc", "endpoints": [
        {"interface": "internal", "region": "eu-de", "url": "https://internal.example/v1/$(tenant_id)s"},
        {"interface": "public", "region": "eu-nl", "url": "https://vpc.eu-nl.example/v1/$(tenant_id)s"},
        {"interface": "public", "region": "eu-de", "url": "https://vpc.eu-de.example/v1/$(tenant_id)s/"}]}]

    endpoints, fallback = endpoints_from_catalog(catalog, "eu-de", "p1")

    assert endpoints.vpc == "https://vpc.eu-de.example/v1/p1"
    assert endpoints.ecs == "https://ecs.eu-de.otc.t-systems.com/v1/p1"
    assert endpoints.as_ == "https://as.eu-de.otc.t-systems.com/autoscaling-api/v1/p1"
    assert fallback == ["ecs", "as", "smn"]


def test_load_auth_refuses_a_non_password_auth_type(tmp_path: Path) -> None:
    clouds_yaml(tmp_path / "clouds.yaml", {"otc": {**otc_cloud(), "auth_type": "v3applicationcredential"}})
    with pytest.raises(InputError, match="auth_type 'v3applicationcredential' is not supported"):
        load_auth("otc", {}, region="eu-de", cwd=tmp_path, home=tmp_path, system_dir=tmp_path)


def test_the_image_builders_services_come_from_the_catalog_too() -> None:
    """IMS's image calls are not project-scoped (/v2/cloudimages), its jobs are (/v1/{project_id}/jobs); OBS is
    called at its host. A client asks only for its own services, so nothing else counts as a fallback."""
    catalog = [
        {"type": "ims", "endpoints": [{"interface": "public", "region": "eu-de", "url": "https://images.example"}]},
        {"type": "obs", "endpoints": [{"interface": "public", "region": "eu-de", "url": "https://obs.example/"}]},
    ]

    endpoints, fallback = endpoints_from_catalog(catalog, "eu-de", "p1", ("ecs", "ims", "ims_jobs", "obs"))

    assert endpoints.base("ims") == "https://images.example/v2"
    assert endpoints.base("ims_jobs") == "https://images.example/v1/p1"
    assert endpoints.base("obs") == "https://obs.example"
    assert endpoints.base("ecs") == "https://ecs.eu-de.otc.t-systems.com/v1/p1"
    assert fallback == ["ecs"]
