"""plan(): the configuration a node gets, checked as the services would read it."""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

import pytest

from bootstrap_agent import names
from bootstrap_agent.desired import Plan
from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.facts import Facts, TemporaryCredentials
from bootstrap_agent.layout import Layout
from bootstrap_agent.node_paths import (
    ALLUXIO_ENV,
    ALLUXIO_SITE,
    AWS_CREDENTIALS,
    MESOS_AGENT_ENV,
    MESOS_MASTER_ENV,
    ZOO_CFG,
    ZOO_MYID,
)
from bootstrap_agent.plan import plan
from bootstrap_agent.schema import validate
from bootstrap_agent.services.envfile import parse_environment_file
from bootstrap_agent.sizes import GiB, MiB, parse_size
from bootstrap_agent.templates import properties_escape

MASTER_IP = "10.20.0.10"
MASTERS = ["10.20.0.10", "10.20.0.11", "10.20.0.12", "10.20.0.13", "10.20.0.14"]


def user_data(role: str = "agent", masters: int = 1, alluxio: str | None = "2.9", mesos: str = "1.11",
              **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "schema": 1, "cluster": "eo-test", "role": role, "masters": MASTERS[:masters],
        "secret": "s3cr3t-s3cr3t-s3cr3t",
        "mesos": {"version": mesos, "containerizers": ["docker", "mesos"], "attributes": {"az": "eu-de-02"}},
    }
    if alluxio:
        data["alluxio"] = {"version": alluxio, "root_ufs": "s3://eo-bucket/cache", "block_size": "4MB",
                           "s3_endpoint": "https://obs.eu-de.otc.t-systems.com"}
        data["credentials"] = {"source": "keys", "access_key_id": "AKIDEXAMPLE0001",
                               "secret_access_key": "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"}
    data.update(extra)
    return data


OWN_CERT = "-----BEGIN CERTIFICATE-----\nb3du\n-----END CERTIFICATE-----\n"  # the node's self-signed pair
OWN_KEY = "-----BEGIN PRIVATE KEY-----\nb3du\n-----END PRIVATE KEY-----\n"
AGENCY_KEYS = TemporaryCredentials("TEMPAK0001", "temp-secret-0001", "temp-token-0001", "2030-01-01T00:00:00Z")


def facts(ip: str = "10.20.0.50", memory: int = 32 * GiB, cpus: int = 8,
          keys: TemporaryCredentials | None = AGENCY_KEYS) -> Facts:
    return Facts(ip=ip, hostname="node-1", cpus=cpus, memory=memory, instance_uuid="uuid-1", s3_credentials=keys,
                 tls=(OWN_CERT, OWN_KEY))


def text(p: Plan, path: str) -> str:
    return p.file(path).content.decode()


def properties(p: Plan) -> dict[str, str]:
    """Read alluxio-site.properties like java.util.Properties does for our (escaped) output."""
    result = {}
    for line in text(p, ALLUXIO_SITE).splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            result[key] = value.replace("\\\\", "\\")
    return result


@pytest.mark.parametrize("count", [1, 3, 5])
def test_master_zookeeper_and_mesos_quorum(count: int) -> None:
    for position in range(count):
        settings = validate(user_data("master", masters=count))
        p = plan(settings, facts(ip=MASTERS[position]))
        zoo = text(p, ZOO_CFG)
        servers = [line for line in zoo.splitlines() if line.startswith("server.")]
        assert servers == [f"server.{i + 1}={ip}:2888:3888" for i, ip in enumerate(MASTERS[:count])]
        assert text(p, ZOO_MYID) == f"{position + 1}\n"
        env = parse_environment_file(text(p, MESOS_MASTER_ENV))
        assert env["MESOS_ZK"] == "zk://" + ",".join(f"{ip}:2181" for ip in MASTERS[:count]) + "/mesos"
        assert env["MESOS_QUORUM"] == str(count // 2 + 1)
        assert env["MESOS_IP"] == MASTERS[position]
        assert [s.unit for s in p.services] == ["zookeeper", "mesos-master", "alluxio-master", "alluxio-proxy",
                                                "alluxio-job-master",
                                                "nginx"]


def test_master_alluxio_ha_names_every_master() -> None:
    p = plan(validate(user_data("master", masters=3)), facts(ip=MASTERS[1]))
    props = properties(p)
    assert props["alluxio.master.hostname"] == MASTERS[1]
    assert props["alluxio.master.embedded.journal.addresses"] == ",".join(f"{ip}:19200" for ip in MASTERS[:3])
    assert props["alluxio.master.rpc.addresses"] == ",".join(f"{ip}:19998" for ip in MASTERS[:3])
    single = properties(plan(validate(user_data("master")), facts(ip=MASTERS[0])))
    assert "alluxio.master.embedded.journal.addresses" not in single


def test_master_must_be_listed() -> None:
    with pytest.raises(InvalidInput, match="not in masters") as info:
        plan(validate(user_data("master", masters=3)), facts(ip="10.20.0.99"))
    assert info.value.path == "masters"


def test_agent_mesos_flags() -> None:
    p = plan(validate(user_data("agent", masters=3)), facts(cpus=8))
    env = parse_environment_file(text(p, MESOS_AGENT_ENV))
    assert env["MESOS_MASTER"] == "zk://10.20.0.10:2181,10.20.0.11:2181,10.20.0.12:2181/mesos"
    assert env["MESOS_CONTAINERIZERS"] == "docker,mesos"
    assert env["MESOS_ATTRIBUTES"] == "az:eu-de-02"
    assert env["MESOS_RESOURCES"].startswith("cpus:8;mem:")
    assert env["MESOS_EXECUTOR_REGISTRATION_TIMEOUT"] == "5mins"  # docker pulls are slow
    assert env["MESOS_DOCKER_SOCKET"] == "/run/docker.sock"
    assert [s.unit for s in p.services] == [
        "var-lib-alluxio-ramdisk.mount", "docker", "mesos-agent", "alluxio-worker", "alluxio-proxy",
        "alluxio-job-worker", "spark-shuffle"]


def test_agent_flags_override_defaults_and_reach_the_file() -> None:
    data = user_data()
    data["mesos"]["agent_flags"] = {"executor_registration_timeout": "10mins", "docker_remove_delay": "5mins"}
    env = parse_environment_file(text(plan(validate(data), facts()), MESOS_AGENT_ENV))
    assert env["MESOS_EXECUTOR_REGISTRATION_TIMEOUT"] == "10mins"
    assert env["MESOS_DOCKER_REMOVE_DELAY"] == "5mins"


def test_ramdisk_auto_leaves_room_for_mesos() -> None:
    for memory in (6 * GiB, 16 * GiB, 64 * GiB, 256 * GiB):  # below 6 GiB everything an agent runs leaves too little
        p = plan(validate(user_data()), facts(memory=memory))
        ramdisk = parse_size(properties(p)["alluxio.worker.ramdisk.size"])
        mesos_mb = int(parse_environment_file(text(p, MESOS_AGENT_ENV))["MESOS_RESOURCES"].split("mem:")[1])
        assert ramdisk >= 256 * MiB
        assert mesos_mb * MiB >= ramdisk  # tasks get at least as much as the cache
        assert ramdisk + mesos_mb * MiB <= memory - 2 * GiB  # OS + worker JVM keep at least 2 GiB


def test_ramdisk_version_keys() -> None:
    v18 = properties(plan(validate(user_data(alluxio="1.8")), facts()))
    v29 = properties(plan(validate(user_data(alluxio="2.9")), facts()))
    assert "alluxio.worker.memory.size" in v18 and "alluxio.worker.ramdisk.size" not in v18
    assert "alluxio.worker.ramdisk.size" in v29 and "alluxio.worker.memory.size" not in v29
    assert v18["alluxio.underfs.address"] == "s3a://eo-bucket/cache"
    assert v29["alluxio.master.mount.table.root.ufs"] == "s3a://eo-bucket/cache"
    assert v18["aws.secretKey"] == v29["s3a.secretKey"] == "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


def test_explicit_ramdisk_that_cannot_fit_is_an_input_error() -> None:
    data = user_data()
    data["alluxio"]["worker_ramdisk"] = "30GB"
    with pytest.raises(InvalidInput) as info:
        plan(validate(data), facts(memory=32 * GiB))
    assert info.value.path == "alluxio.worker_ramdisk"
    data["alluxio"]["worker_ramdisk"] = "8GB"
    assert properties(plan(validate(data), facts(memory=32 * GiB)))["alluxio.worker.ramdisk.size"] == "8GB"


def test_no_alluxio_section_no_alluxio_units() -> None:
    for role, ip in (("master", MASTERS[0]), ("agent", "10.20.0.50")):
        p = plan(validate(user_data(role, alluxio=None)), facts(ip=ip))
        assert not [s for s in p.services if s.unit.startswith("alluxio")]
        assert ALLUXIO_SITE not in [f.path for f in p.files]


def test_secret_files_are_0600_and_others_not_secret() -> None:
    p = plan(validate(user_data()), facts())
    site = p.file(ALLUXIO_SITE)
    assert site.mode == 0o600 and site.secret
    secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
    for f in p.files:
        if secret.encode() in f.content or b"s3cr3t-s3cr3t" in f.content:
            assert f.mode == 0o600, f.path


def test_layout_root_reaches_paths_inside_files() -> None:
    p = plan(validate(user_data("master")), facts(ip=MASTERS[0]), layout=Layout("/tmp/node1"))
    assert "dataDir=/tmp/node1/var/lib/zookeeper/data\n" in text(p, ZOO_CFG)
    assert parse_environment_file(text(p, MESOS_MASTER_ENV))["MESOS_WORK_DIR"] == "/tmp/node1/var/lib/mesos"


def test_plan_is_deterministic_and_digest_tracks_inputs() -> None:
    settings = validate(user_data())
    a, b = plan(settings, facts()), plan(settings, facts())
    assert a == b
    changed = copy.deepcopy(user_data())
    changed["mesos"]["attributes"] = {"az": "eu-de-01"}
    c = plan(validate(changed), facts())
    by_unit = {s.unit: s for s in a.services}
    c_units = {s.unit: s for s in c.services}
    assert a.inputs_digest(by_unit["mesos-agent"]) != c.inputs_digest(c_units["mesos-agent"])
    assert a.inputs_digest(by_unit["alluxio-worker"]) == c.inputs_digest(c_units["alluxio-worker"])


def test_awkward_values_round_trip_through_the_files() -> None:
    data = user_data()
    data["mesos"]["attributes"] = {"team": 'eo "quoted" $HOME `cmd` back\\slash'}
    env = parse_environment_file(text(plan(validate(data), facts()), MESOS_AGENT_ENV))
    assert env["MESOS_ATTRIBUTES"] == 'team:eo "quoted" $HOME `cmd` back\\slash'
    assert properties_escape("a\\b é") == "a\\\\b \\u00e9"


def test_agency_keys_go_to_a_profile_file_that_restarts_nothing() -> None:
    data = user_data()
    data["credentials"] = {"source": "agency"}
    p = plan(validate(data), facts())
    props = properties(p)
    assert not [k for k in props if "accessKey" in k or "secretKey" in k]
    assert p.file(ALLUXIO_SITE).mode == 0o644  # no key in it any more
    keys = p.file(AWS_CREDENTIALS)
    assert keys.mode == 0o600 and b"aws_session_token = temp-token-0001" in keys.content
    env = parse_environment_file(text(p, ALLUXIO_ENV))
    assert env["AWS_CREDENTIAL_PROFILES_FILE"] == AWS_CREDENTIALS
    worker = next(s for s in p.services if s.unit == "alluxio-worker")
    assert ALLUXIO_ENV in worker.inputs and AWS_CREDENTIALS not in worker.inputs

    rotated = plan(validate(data), facts(keys=TemporaryCredentials("TEMPAK0002", "s2", "t2")))
    assert rotated.file(AWS_CREDENTIALS).content != keys.content
    assert rotated.inputs_digest(worker) == p.inputs_digest(worker)  # a rotation restarts nothing

    with pytest.raises(InvalidInput) as info:
        plan(validate(data), facts(keys=None))
    assert info.value.path == "credentials.source"


# --- only valid names, for every version and role --------------------------------------------------------------

def emitted_names(p: Plan) -> tuple[set[str], set[str], set[str]]:
    master, agent, alluxio = set(), set(), set()
    for f in p.files:
        if f.path in (MESOS_MASTER_ENV, MESOS_AGENT_ENV):
            flags = {k.removeprefix("MESOS_").lower() for k in parse_environment_file(f.content.decode())}
            (master if f.path == MESOS_MASTER_ENV else agent).update(flags)
        if f.path == ALLUXIO_SITE:
            alluxio.update(line.partition("=")[0] for line in f.content.decode().splitlines()
                           if line and not line.startswith("#"))
    return master, agent, alluxio


MATRIX = list(itertools.product(("master", "agent"), (1, 3, 5), names.MESOS_VERSIONS, (None, *names.ALLUXIO_VERSIONS),
                                ("keys", "agency"), (["mesos"], ["docker", "mesos"])))


@pytest.mark.parametrize(("role", "count", "mesos", "alluxio", "source", "containerizers"), MATRIX)
def test_templates_emit_only_names_the_version_knows(
    role: str, count: int, mesos: str, alluxio: str | None, source: str, containerizers: list[str]
) -> None:
    data = user_data(role, masters=count, alluxio=alluxio, mesos=mesos)
    data["mesos"]["containerizers"] = containerizers
    if alluxio:
        data["credentials"] = ({"source": "agency"} if source == "agency" else data["credentials"])
        data["alluxio"]["worker_ramdisk"] = "auto" if count == 1 else "2GB"
    try:
        settings = validate(data)
    except InvalidInput:
        # Combinations validation refuses (agency with 1.8, 1.8 with several masters) never reach a template.
        assert alluxio == "1.8" and (source == "agency" or count > 1)
        return
    p = plan(settings, facts(ip=MASTERS[0] if role == "master" else "10.20.0.50"))
    master, agent, alluxio_keys = emitted_names(p)
    assert master <= names.mesos_flags(mesos, "master"), master - names.mesos_flags(mesos, "master")
    assert agent <= names.mesos_flags(mesos, "agent"), agent - names.mesos_flags(mesos, "agent")
    if alluxio:
        assert alluxio_keys, "an alluxio section must render alluxio-site.properties"
        assert alluxio_keys <= names.alluxio_keys(alluxio), alluxio_keys - names.alluxio_keys(alluxio)
    assert (master or agent), "every role renders Mesos flags"


def test_templates_refuse_undefined_values() -> None:
    import jinja2

    from bootstrap_agent.templates import environment, render

    with pytest.raises(jinja2.UndefinedError):
        environment().from_string("dataDir={{ data_dir }}\n").render()
    with pytest.raises(jinja2.UndefinedError):
        render("zoo.cfg.j2", cluster="c")  # a template rendered without one of its values fails, never writes ""


def test_dashboard_tls_and_auth() -> None:
    from bootstrap_agent.node_paths import DASHBOARD_CERT, DASHBOARD_HTPASSWD, DASHBOARD_KEY, NGINX_DASHBOARD

    master = facts(ip=MASTER_IP)
    locked = plan(validate(user_data("master")), master)
    conf = text(locked, NGINX_DASHBOARD)
    assert "listen 10.20.0.10:443 ssl;" in conf and "return 403" in conf and "proxy_pass" not in conf
    assert text(locked, DASHBOARD_CERT) == OWN_CERT and locked.file(DASHBOARD_KEY).mode == 0o600
    assert DASHBOARD_HTPASSWD not in [f.path for f in locked.files]

    hashed = "$apr1$3vT8N4I8$9hN9WDxB1VEkoHsYu3HHn0"
    given_cert = "-----BEGIN CERTIFICATE-----\nZ2l2ZW4=\n-----END CERTIFICATE-----\n"
    given_key = "-----BEGIN EC PRIVATE KEY-----\nZ2l2ZW4=\n-----END EC PRIVATE KEY-----\n"
    data = user_data("master", dashboard={"user": "eo", "password_hash": hashed, "tls_certificate": given_cert,
                                          "tls_key": given_key})
    open_ = plan(validate(data), master)
    conf = text(open_, NGINX_DASHBOARD)
    assert "auth_basic_user_file" in conf and "return 403" not in conf
    htpasswd = open_.file(DASHBOARD_HTPASSWD)
    assert htpasswd.content == f"eo:{hashed}\n".encode() and htpasswd.mode == 0o640 and htpasswd.group == "www-data"
    assert text(open_, DASHBOARD_CERT) == given_cert and text(open_, DASHBOARD_KEY) == given_key  # user-data wins
    nginx = next(s for s in open_.services if s.unit == "nginx")
    assert set(nginx.inputs) == {NGINX_DASHBOARD, DASHBOARD_CERT, DASHBOARD_KEY, DASHBOARD_HTPASSWD}

    off = plan(validate(user_data("master", dashboard={"auth": False})), master)
    off_conf = text(off, NGINX_DASHBOARD)
    assert "auth_basic" not in off_conf and off_conf.count("return 403") == 2  # the pages open, the status not:
    assert 'location = /status.json {\n        default_type text/plain;\n        return 403' in off_conf
    assert 'location /prometheus/ {\n        default_type text/plain;\n        return 403' in off_conf  # nor targets

    with pytest.raises(InvalidInput) as info:
        plan(validate(user_data("master")), Facts(ip=MASTER_IP, hostname="m", cpus=2, memory=8 * GiB,
                                                   instance_uuid="u"))
    assert info.value.path == "dashboard.tls_certificate"


def test_master_renders_the_cluster_status_document_from_its_members() -> None:
    from bootstrap_agent.desired import Peers
    from bootstrap_agent.node_paths import DASHBOARD_STATUS, NGINX_DASHBOARD

    members = (
        {"uuid": "u-2", "role": "agent", "ip": "10.20.0.31", "hostname": "a1", "state": "bootstrapping",
         "reason": "mesos-agent not listening", "services": {"mesos-agent": "activating"}, "since": 1_800_000_000.5,
         "capacity": {"cpus": 4, "memory_bytes": 16 << 30, "alluxio_bytes": 4 << 30}},
        {"uuid": "u-1", "role": "master", "ip": MASTER_IP, "hostname": "m1", "state": "ready", "reason": "",
         "services": {"zookeeper": "active"}, "since": 1_800_000_000},
    )
    data = user_data("master", dashboard={"password_hash": "$apr1$3vT8N4I8$9hN9WDxB1VEkoHsYu3HHn0"})
    rendered = plan(validate(data), facts(ip=MASTER_IP), Peers(members, read_at=1_800_000_060))
    doc = json.loads(text(rendered, DASHBOARD_STATUS))
    assert doc == {
        "schema": 1, "cluster": doc["cluster"], "rendered_at": "2027-01-15T08:01:00Z",
        "counts": {"members": 2, "ready": 1, "masters": 1, "masters_ready": 1, "agents": 1, "agents_ready": 0},
        "totals": {"agents": 1, "masters": 1, "unreported": 0, "cpus": 4, "memory_bytes": 16 << 30,
                   "alluxio_bytes": 4 << 30, "by_state": {
                       "bootstrapping": {"agents": 1, "cpus": 4, "memory_bytes": 16 << 30, "alluxio_bytes": 4 << 30},
                       **{state: {"agents": 0, "cpus": 0, "memory_bytes": 0, "alluxio_bytes": 0}
                          for state in ("ready", "degraded", "draining")}}},
        "members": [
            {"uuid": "u-1", "role": "master", "ip": MASTER_IP, "hostname": "m1", "state": "ready", "reason": "",
             "services": {"zookeeper": "active"}, "since": "2027-01-15T08:00:00Z"},
            {"uuid": "u-2", "role": "agent", "ip": "10.20.0.31", "hostname": "a1", "state": "bootstrapping",
             "reason": "mesos-agent not listening", "services": {"mesos-agent": "activating"},
             "since": "2027-01-15T08:00:00Z",
             "capacity": {"cpus": 4, "memory_bytes": 16 << 30, "alluxio_bytes": 4 << 30}},
        ],
    }
    assert rendered.file(DASHBOARD_STATUS).mode == 0o644  # nginx reads it; only the password guards it
    conf = text(rendered, NGINX_DASHBOARD)
    assert "location = /status.json {\n        default_type application/json;" in conf
    nginx = next(s for s in rendered.services if s.unit == "nginx")
    assert DASHBOARD_STATUS not in nginx.inputs  # a new document is served as a file: no reload
