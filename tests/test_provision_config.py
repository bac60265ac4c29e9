"""The cluster file: YAML or JSON, checked completely before any call; a bad one is one line naming the field.

Bad input changes nothing: no API call, no state file, nothing on standard output, exit 2.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

from provision_min import config
from tests.support.provision_env import EXAMPLE, Env, cluster_document


@pytest.fixture
def env(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Env:
    return Env(tmp_path, capsys, monkeypatch)


def test_the_shipped_example_is_valid() -> None:
    example = config.load(EXAMPLE)
    assert example.cluster == "analytics11" and example.masters == 1
    assert example.master_ips == ("192.168.0.10",)
    assert example.gateway_ip == "192.168.0.1"
    assert example.agents == config.Agents(min=1, max=10, desired=2)
    assert example.user_data("agent", "x" * 20)["mesos"]["containerizers"] == ["docker", "mesos"]


@pytest.mark.parametrize(("subnet", "count", "ips"), [
    ("192.168.0.0/24", 1, ("192.168.0.10",)),
    ("10.1.2.0/24", 3, ("10.1.2.10", "10.1.2.11", "10.1.2.12")),
    ("172.16.32.0/20", 5, ("172.16.32.10", "172.16.32.11", "172.16.32.12", "172.16.32.13", "172.16.32.14")),
])
def test_master_addresses_are_the_subnet_plus_ten_onwards(subnet: str, count: int, ips: tuple[str, ...]) -> None:
    assert config.master_ips(ipaddress.IPv4Network(subnet), count) == ips


def test_json_and_yaml_cluster_files_are_the_same(env: Env) -> None:
    document = cluster_document()
    from_yaml = config.load(env.write_cluster(document, "c.yaml"))
    from_json = config.load(env.write_cluster(document, "c.json"))
    assert from_yaml.master_ips == from_json.master_ips and from_yaml.agents == from_json.agents
    assert from_yaml.mesos == from_json.mesos and from_yaml.credentials == from_json.credentials


def with_(**changes: Any) -> dict[str, Any]:
    return cluster_document(**changes)


def nested(section: str, key: str, value: Any) -> dict[str, Any]:
    document = cluster_document()
    document[section] = {**document[section], key: value}
    return document


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("missing cluster", with_(cluster=None), "cluster: required"),
    ("unknown key", with_(flavour="x"), "flavour: unknown key"),
    ("bad cluster name", with_(cluster="Analytics_11"), "cluster: 'Analytics_11' must be 1-32 characters"),
    ("two masters", with_(masters=2), "masters: must be 1, 3 or 5"),
    ("masters as text", with_(masters="3"), "masters: must be 1, 3 or 5"),
    ("desired above max", nested("agents", "desired", 11), "agents.desired: 11 is outside agents.min..agents.max"),
    ("min above max", nested("agents", "min", 12), "agents.min: 12 is larger than agents.max 10"),
    ("agents typo", nested("agents", "maximum", 3), "agents.maximum: unknown key"),
    ("agents negative", nested("agents", "min", -1), "agents.min: must be a whole number >= 0"),
    ("subnet outside vpc", with_(subnet_cidr="10.0.0.0/24"), "subnet_cidr: 10.0.0.0/24 is not inside vpc_cidr"),
    ("public vpc", with_(vpc_cidr="8.8.0.0/16"), "vpc_cidr: 8.8.0.0/16 is not inside 10.0.0.0/8"),
    ("not a cidr", with_(vpc_cidr="192.168.0.0/33"), "vpc_cidr: '192.168.0.0/33' is not an IPv4 network"),
    ("host bits set", with_(subnet_cidr="192.168.0.5/24"), "subnet_cidr: '192.168.0.5/24' is not an IPv4 network"),
    ("subnet too small", with_(subnet_cidr="192.168.0.0/28"), "subnet_cidr: 192.168.0.0/28 has 16 addresses"),
    ("bad image id", with_(image_id="a b"), "image_id: 'a b' is not an image id"),
    ("empty key name", with_(key_name=""), "key_name: expected a non-empty string"),
    ("bad volume type", with_(volume_type="NVME"), "volume_type: must be one of"),
    ("bad dns", with_(dns_servers=["1.2.3"]), "dns_servers[0]: '1.2.3' is not an IPv4 address"),
    ("unknown mesos flag", nested("mesos", "agent_flags", {"no_such_flag": "1"}),
     "mesos.agent_flags.no_such_flag: mesos-agent 1.11 has no flag --no_such_flag"),
    ("managed mesos flag", nested("mesos", "master_flags", {"quorum": "2"}),
     "mesos.master_flags.quorum: --quorum is set by bootstrap-agent itself"),
    ("bad root ufs", nested("alluxio", "root_ufs", "hdfs://x/y"), "alluxio.root_ufs: 'hdfs://x/y' must be s3://"),
    ("bad block size", nested("alluxio", "block_size", "4 parsecs"), "alluxio.block_size:"),
    ("alluxio without credentials", with_(credentials=None), "credentials: required when 'alluxio' is set"),
    ("short secret key", nested("credentials", "secret_access_key", "short"),
     "credentials.secret_access_key: must be 8-256 characters"),
    ("unknown user-data key", nested("alluxio", "journal", "x"), "alluxio.journal: unknown key"),
    ("user-data over 32 KB", nested("mesos", "attributes", {f"a{i}": "x" * 60 for i in range(600)}),
     "user-data is"),
    # issue 13: checks before anything is created
    ("zone of another region", with_(availability_zone="eu-nl-01"),
     "availability_zone: 'eu-nl-01' is not a zone of region eu-de"),
    ("image name, not id", with_(image_id="Standard_Debian_12_latest"),
     "image_id: 'Standard_Debian_12_latest' is not an image id"),
    ("image id too short", with_(image_id="00000000-0000-0000-0000-00000000000"), "image_id:"),
    ("duration without unit", nested("mesos", "agent_flags", {"gc_delay": 3}),
     "mesos.agent_flags.gc_delay: '3' has no unit"),
    ("block size in bytes", nested("alluxio", "block_size", 4),
     "alluxio.block_size: '4' is 4 bytes, less than the minimum 1MB; did you mean 4MB?"),
    ("key twice", nested("credentials", "secret_access_key_env", "OBS_SECRET"),
     "credentials.secret_access_key_env: give only one of secret_access_key, secret_access_key_env"),
    ("key variable unset", with_(credentials={"source": "keys", "access_key_id_env": "NO_SUCH_VARIABLE",
                                              "secret_access_key": "x" * 40}),
     "credentials.access_key_id_env: the environment variable NO_SUCH_VARIABLE is not set"),
    ("key file missing", with_(credentials={"source": "keys", "access_key_id": "A" * 20,
                                            "secret_access_key_file": "no-such.secret"}),
     "credentials.secret_access_key_file: no such file"),
    ("key file with agency", with_(credentials={"source": "agency", "secret_access_key_file": "x"}),
     "credentials.secret_access_key_file: only with source 'keys'"),
]


@pytest.mark.parametrize(("document", "message"), [(d, m) for _, d, m in BAD], ids=[i for i, _, _ in BAD])
def test_a_bad_cluster_file_is_one_line_naming_the_field_and_changes_nothing(env: Env, document: dict[str, Any],
                                                                             message: str) -> None:
    path = env.write_cluster(document)
    before = set(env.root.rglob("*"))

    for command in (["plan", "--offline"], ["up"], ["down"], ["status"], ["scale", "3"]):
        result = env.run(*command)
        assert result.code == 2, (command, result.err)
        assert result.out == ""
        line = result.error_line()
        assert line.startswith(f"provision-min: {path}: ") and message in line, line
        assert result.err.count("\n") == 1, result.err
    assert set(env.root.rglob("*")) == before


def test_a_key_given_twice_in_yaml_is_an_error(env: Env) -> None:
    path = env.work / "twice.yaml"
    path.write_text(EXAMPLE.read_text() + "\nmasters: 3\n")
    result = env.run("plan", "--offline", "--config", str(path))
    assert result.code == 2
    assert "not valid YAML: key 'masters' is given twice (line" in result.error_line()


@pytest.mark.parametrize(("name", "text", "message"), [
    ("broken.yaml", "cluster: [unclosed\n", "not valid YAML"),
    ("broken.json", "{\"cluster\": }", "not valid JSON: Expecting value (line 1, column 13)"),
    ("list.yaml", "- 1\n- 2\n", "expected a mapping of settings at the top, got a list"),
])
def test_unreadable_files(env: Env, name: str, text: str, message: str) -> None:
    path = env.work / name
    path.write_text(text)
    result = env.run("plan", "--offline", "--config", str(path))
    assert result.code == 2 and message in result.error_line()


def test_a_missing_cluster_file(env: Env) -> None:
    result = env.run("plan", "--offline", "--config", str(env.work / "nope.yaml"))
    assert result.code == 2
    assert result.error_line() == f"provision-min: {env.work / 'nope.yaml'}: no such cluster file"


def test_a_state_file_others_can_read_is_refused(env: Env) -> None:
    env.write_cluster(cluster_document(alluxio=None, credentials=None))
    env.state_file.write_text(json.dumps({"cluster": "analytics11", "secret": "s" * 43, "masters": ["192.168.0.10"]}))
    env.state_file.chmod(0o644)

    result = env.run("up")

    assert result.code == 2
    assert result.error_line() == (f"provision-min: {env.state_file} holds secrets but is accessible by group/others "
                                   f"(mode 0644); run: chmod 600 {env.state_file}")
