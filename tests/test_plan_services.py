"""plan() for issue 7: agent services (docker, spark-shuffle), RAM folders as mount units, the memory fit
check, the optional tools on masters, and which files may hold a secret.

The mount units are checked the way systemd reads them: the unit name must be ``systemd-escape --path
--suffix=mount`` of ``Where=`` (systemd refuses anything else), so the real ``systemd-escape`` is the oracle.
"""

from __future__ import annotations

import configparser
import json
import stat
import subprocess
from typing import Any

import pytest

from bootstrap_agent.desired import Plan
from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.facts import Facts
from bootstrap_agent.layout import Layout
from bootstrap_agent.node_paths import (
    DOCKER_DAEMON_JSON,
    MESOS_AGENT_ENV,
    NGINX_DASHBOARD,
    SPARK_SHUFFLE_ENV,
    UNIT_DIR,
    ZEPPELIN_ENV,
)
from bootstrap_agent.plan import plan
from bootstrap_agent.plan.memory import agent_memory
from bootstrap_agent.plan.mounts import mount_unit_name
from bootstrap_agent.schema import validate
from bootstrap_agent.services.envfile import parse_environment_file
from bootstrap_agent.sizes import GiB, MiB
from tests.test_plan import AGENCY_KEYS, MASTERS, facts, text, user_data

PASSWORD_HASH = "$apr1$3vT8N4I8$9hN9WDxB1VEkoHsYu3HHn0"


def mount_sections(p: Plan) -> dict[str, dict[str, str]]:
    """unit name -> its [Mount] section, read like systemd's ini parser would."""
    result = {}
    for f in p.files:
        if f.path.startswith(UNIT_DIR + "/") and f.path.endswith(".mount"):
            parser = configparser.ConfigParser(interpolation=None, strict=True)
            parser.optionxform = str  # type: ignore[assignment,method-assign]
            parser.read_string(f.content.decode())
            result[f.path.rsplit("/", 1)[1]] = dict(parser["Mount"])
    return result


def option(options: str, name: str) -> str:
    return dict(o.partition("=")[::2] for o in options.split(","))[name]


def systemd_escape(path: str) -> str:
    return subprocess.run(["systemd-escape", "--path", "--suffix=mount", path], capture_output=True, text=True,
                          check=True, timeout=10).stdout.strip()


@pytest.mark.parametrize("path", [
    "/var/lib/mesos", "/var/lib/docker", "/var/lib/alluxio/ramdisk", "/srv/my-data//x/", "/a/.hidden", "/",
    "/tmp/pytest-of-root/ä b", "/x:y_z.w",
])
def test_mount_unit_names_are_systemd_escape_names(path: str) -> None:
    assert mount_unit_name(path) == systemd_escape(path)


def test_agent_services_start_after_their_config_in_dependency_order() -> None:
    data = user_data()
    data["mesos"]["work_dir_ramdisk"] = "2GB"
    data["mesos"]["docker_ramdisk"] = "auto"
    p = plan(validate(data), facts())
    units = [s.unit for s in p.services]
    assert units == ["var-lib-mesos.mount", "var-lib-docker.mount", "var-lib-alluxio-ramdisk.mount", "docker",
                     "mesos-agent", "alluxio-worker", "alluxio-proxy", "alluxio-job-worker", "spark-shuffle"]
    by_unit = {s.unit: s for s in p.services}
    assert by_unit["docker"].inputs == (DOCKER_DAEMON_JSON,) and by_unit["docker"].requires == ("var-lib-docker.mount",)
    assert by_unit["docker"].sockets == ("/run/docker.sock",)  # up only once dockerd has bound its API socket
    assert by_unit["mesos-agent"].requires == ("var-lib-mesos.mount",)
    assert by_unit["alluxio-worker"].requires == ("var-lib-alluxio-ramdisk.mount",)
    assert by_unit["spark-shuffle"].inputs == (SPARK_SHUFFLE_ENV, "/etc/spark/conf/spark-defaults.conf",
                                                "/etc/spark/conf/spark-env.sh")
    assert by_unit["spark-shuffle"].ports == (("10.20.0.50", 7337),)
    assert by_unit["spark-shuffle"].requires == ("var-lib-mesos.mount",)  # its spark.local.dir is below it
    env = parse_environment_file(text(p, SPARK_SHUFFLE_ENV))
    assert env == {"SPARK_CONF_DIR": "/etc/spark/conf", "SPARK_LOCAL_IP": "10.20.0.50", "SPARK_DAEMON_MEMORY": "512m"}
    daemon = json.loads(text(p, DOCKER_DAEMON_JSON))
    assert daemon["data-root"] == "/var/lib/docker" and daemon["live-restore"] is True
    mesos = parse_environment_file(text(p, MESOS_AGENT_ENV))
    assert mesos["MESOS_CONTAINERIZERS"] == "docker,mesos" and mesos["MESOS_DOCKER_SOCKET"] == "/run/docker.sock"
    assert mesos["MESOS_DOCKER_REMOVE_DELAY"] == "5mins"


def test_no_docker_without_the_docker_containerizer_and_no_shuffle_when_off() -> None:
    data = user_data()
    data["mesos"]["containerizers"] = ["mesos"]
    data["spark"] = {"shuffle_service": False}
    p = plan(validate(data), facts())
    assert [s.unit for s in p.services] == ["var-lib-alluxio-ramdisk.mount", "mesos-agent", "alluxio-worker",
                                            "alluxio-proxy", "alluxio-job-worker"]
    assert DOCKER_DAEMON_JSON not in [f.path for f in p.files]
    assert "MESOS_DOCKER_SOCKET" not in parse_environment_file(text(p, MESOS_AGENT_ENV))
    data["spark"] = {"shuffle_port": 17337}
    assert next(s for s in plan(validate(data), facts()).services if s.unit == "spark-shuffle").ports[0][1] == 17337


@pytest.mark.parametrize("memory", [8 * GiB, 32 * GiB, 128 * GiB])
def test_ram_folders_are_tmpfs_mount_units_sized_from_memory(memory: int) -> None:
    data = user_data()
    data["mesos"]["work_dir_ramdisk"] = "auto"
    data["mesos"]["docker_ramdisk"] = "1GB"
    settings = validate(data)
    p = plan(settings, facts(memory=memory))
    mounts = mount_sections(p)
    assert set(mounts) == {"var-lib-mesos.mount", "var-lib-docker.mount", "var-lib-alluxio-ramdisk.mount"}
    for name, section in mounts.items():
        assert name == systemd_escape(section["Where"])
        assert (section["What"], section["Type"]) == ("tmpfs", "tmpfs")
    split = agent_memory(settings, facts(memory=memory))
    sizes = {name: int(option(s["Options"], "size").removesuffix("m")) * MiB for name, s in mounts.items()}
    assert sizes["var-lib-docker.mount"] == GiB == split.docker
    assert sizes["var-lib-mesos.mount"] == split.work_dir > 0
    assert sizes["var-lib-alluxio-ramdisk.mount"] == split.ramdisk
    # Everything adds up to the node's memory: reserve + RAM disks + what Mesos offers to tasks.
    offered = int(parse_environment_file(text(p, MESOS_AGENT_ENV))["MESOS_RESOURCES"].split("mem:")[1]) * MiB
    assert split.reserved + sum(sizes.values()) + offered <= memory
    assert offered >= 512 * MiB
    modes = {name: option(s["Options"], "mode") for name, s in mounts.items()}
    assert modes == {"var-lib-mesos.mount": "0755", "var-lib-docker.mount": "0710",
                     "var-lib-alluxio-ramdisk.mount": "0755"}
    assert "noexec" in mounts["var-lib-alluxio-ramdisk.mount"]["Options"]
    assert "noexec" not in mounts["var-lib-mesos.mount"]["Options"]  # executors run from the sandbox
    for f in p.files:
        if f.path.endswith(".mount"):
            assert f.mode == 0o644 and not f.secret


@pytest.mark.parametrize(("field", "value", "memory"), [
    ("mesos.work_dir_ramdisk", "20GB", 32 * GiB),
    ("mesos.docker_ramdisk", "24GB", 32 * GiB),
    ("mesos.work_dir_ramdisk", "2GB", 13 * GiB),  # with Alluxio's 8GB
])
def test_ram_folders_that_cannot_fit_are_an_input_error_naming_the_field(field: str, value: str, memory: int) -> None:
    data = user_data()
    data["alluxio"]["worker_ramdisk"] = "8GB" if memory > 8 * GiB else "auto"
    section, key = field.split(".")
    data[section][key] = value
    with pytest.raises(InvalidInput) as info:
        plan(validate(data), facts(memory=memory))
    assert info.value.path == field
    assert "\n" not in str(info.value) and "does not fit" in str(info.value)


def test_a_new_size_remounts_but_moving_a_folder_into_ram_restarts_its_user() -> None:
    def digests(docker: str) -> dict[str, str]:
        data = user_data()
        data["mesos"]["docker_ramdisk"] = docker
        p = plan(validate(data), facts())
        return {s.unit: p.inputs_digest(s) for s in p.services}

    off, two, four = digests("off"), digests("2GB"), digests("4GB")
    assert off["docker"] != two["docker"]  # the data-root moved into RAM: restart dockerd
    assert two["docker"] == four["docker"]  # only the size changed: dockerd keeps running...
    assert two["var-lib-docker.mount"] != four["var-lib-docker.mount"]  # ...and the mount is reloaded (remount)
    assert two["mesos-agent"] != four["mesos-agent"]  # the tasks' memory shrank: Mesos must offer less
    assert off["alluxio-worker"] == two["alluxio-worker"] == four["alluxio-worker"]


def test_old_user_data_keeps_its_digests() -> None:
    """Units without mounts hash exactly as before issue 7: upgrading the agent restarts nothing."""
    import hashlib

    data = user_data("master")
    p = plan(validate(data), facts(ip=MASTERS[0]))
    zk = next(s for s in p.services if s.unit == "zookeeper")
    digest = hashlib.sha256(b"zookeeper")
    for path in zk.inputs:
        f = p.file(path)
        digest.update(b"\0" + path.encode() + b"\0" + f.content + oct(f.mode).encode())
    assert p.inputs_digest(zk) == digest.hexdigest()


# --- optional tools on masters -------------------------------------------------------------------------------
def master_plan(**tools: bool) -> Plan:
    data = user_data("master", dashboard={"password_hash": PASSWORD_HASH},
                     **{name: {"enabled": on} for name, on in tools.items()})
    return plan(validate(data), facts(ip=MASTERS[0]))


def test_tools_are_off_by_default_and_get_no_proxy() -> None:
    p = master_plan()
    assert not {"zeppelin", "jenkins"} & {s.unit for s in p.services}
    nginx = text(p, NGINX_DASHBOARD)
    assert "/zeppelin/" not in nginx and "/jenkins/" not in nginx
    index = text(p, "/var/lib/bootstrap-agent/www/index.html")
    assert "/zeppelin/" not in index and "/jenkins/" not in index


def test_enabled_tools_run_on_loopback_behind_the_dashboard() -> None:
    p = master_plan(zeppelin=True)
    services = {s.unit: s for s in p.services}
    assert services["zeppelin"].ports == (("127.0.0.1", 8080),) and "jenkins" not in services
    assert [s.unit for s in p.services][-2:] == ["zeppelin", "nginx"]  # the proxy's target first
    env = parse_environment_file(text(p, ZEPPELIN_ENV))
    assert env["ZEPPELIN_ADDR"] == "127.0.0.1" and env["ZEPPELIN_PORT"] == "8080"
    assert env["ZEPPELIN_SERVER_CONTEXT_PATH"] == "/zeppelin"
    assert env["MASTER"] == f"mesos://zk://{MASTERS[0]}:2181/mesos"
    nginx = text(p, NGINX_DASHBOARD)
    assert "location /zeppelin/ {" in nginx and "proxy_pass http://127.0.0.1:8080;" in nginx
    assert "/jenkins/" not in nginx
    assert '<a href="/zeppelin/">Zeppelin</a>' in text(p, "/var/lib/bootstrap-agent/www/index.html")
    both = master_plan(zeppelin=True, jenkins=True)
    assert {s.unit: s.ports for s in both.services}["jenkins"] == (("127.0.0.1", 8081),)
    assert "location /jenkins/ {" in text(both, NGINX_DASHBOARD)


def test_tools_are_master_only() -> None:
    data = user_data("agent", zeppelin={"enabled": True}, jenkins={"enabled": True})
    assert not {"zeppelin", "jenkins"} & {s.unit for s in plan(validate(data), facts()).services}


# --- secrets in files ----------------------------------------------------------------------------------------
SECRET_CASES: list[tuple[str, dict[str, Any]]] = [
    ("master", {"dashboard": {"password_hash": PASSWORD_HASH}, "zeppelin": {"enabled": True},
                "jenkins": {"enabled": True}}),
    ("agent", {"spark": {"shuffle_port": 7338}}),
    ("agent-agency", {}),
    ("master-agency", {}),
]


@pytest.mark.parametrize(("case", "extra"), SECRET_CASES, ids=[c for c, _ in SECRET_CASES])
def test_every_file_with_a_secret_is_marked_and_closed(case: str, extra: dict[str, Any]) -> None:
    """The audit of issue 7: a file that holds any secret value is marked secret and is 0600 (root), or 0640
    with a group that needs it; a file without one holds none."""
    role = case.split("-")[0]
    data = user_data(role, **extra)
    if case.endswith("agency"):
        data["credentials"] = {"source": "agency"}
    if role == "agent":
        data["mesos"].update(work_dir_ramdisk="1GB", docker_ramdisk="1GB")
    settings = validate(data)
    node: Facts = facts(ip=MASTERS[0] if role == "master" else "10.20.0.50", keys=AGENCY_KEYS)
    p = plan(settings, node, layout=Layout("/"))
    secrets = [*settings.secrets(), AGENCY_KEYS.secret, AGENCY_KEYS.token, node.tls[1] if node.tls else ""]
    for f in p.files:
        holds = [s for s in secrets if s and s.encode() in f.content]
        if holds:
            assert f.secret, f"{f.path} holds a secret but is not marked secret"
            assert f.mode in (0o600, 0o640), f"{f.path}: {oct(f.mode)}"
            assert f.mode == 0o600 or f.group, f"{f.path}: 0640 only for a group that needs it"
        assert not f.mode & stat.S_IROTH or not f.secret, f"{f.path} is secret and world-readable"
