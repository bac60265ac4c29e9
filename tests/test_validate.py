"""`bootstrap-agent validate`: every kind of bad user-data gets exit 2 and one line naming the field."""

from __future__ import annotations

import contextlib
import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.schema import parse_user_data, validate

EXAMPLES = Path(__file__).resolve().parents[1] / "bootstrap_agent" / "examples"


def base() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / "agent.json").read_text())
    return data


def with_(path: str, value: Any) -> dict[str, Any]:
    """A copy of the example with the dotted ``path`` set (``...`` deletes it)."""
    data = copy.deepcopy(base())
    node = data
    *parents, last = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return data


BAD: list[tuple[str, Any, str]] = [
    # (field set, value, path the message must name)
    ("schema", 2, "schema"),
    ("schema", "1", "schema"),
    ("schema", True, "schema"),
    ("schema", ..., "schema"),
    ("extra", 1, "extra"),
    ("mesos.extra", 1, "mesos.extra"),
    ("alluxio.blocksize", "4MB", "alluxio.blocksize"),
    ("credentials.token", "x", "credentials.token"),
    ("cluster", "Analytics", "cluster"),
    ("cluster", "a" * 33, "cluster"),
    ("cluster", "", "cluster"),
    ("cluster", "ab_c", "cluster"),
    ("cluster", 11, "cluster"),
    ("role", "worker", "role"),
    ("role", ..., "role"),
    ("masters", [], "masters"),
    ("masters", ["192.168.0.10", "192.168.0.11"], "masters"),
    ("masters", ["192.168.0.10"] * 3, "masters[1]"),
    ("masters", ["8.8.8.8"], "masters[0]"),
    ("masters", ["127.0.0.1"], "masters[0]"),
    ("masters", ["169.254.169.254"], "masters[0]"),
    ("masters", ["192.168.0.010"], "masters[0]"),
    ("masters", ["192.168.0"], "masters[0]"),
    ("masters", ["fd00::1"], "masters[0]"),
    ("masters", "192.168.0.10", "masters"),
    ("masters", [10], "masters[0]"),
    ("secret", "short", "secret"),
    ("secret", "a-long-enough-secret\nwith-a-newline", "secret"),
    ("secret", 1234567890123456789, "secret"),
    ("mesos.version", "1.5", "mesos.version"),
    ("mesos.version", 1.11, "mesos.version"),
    ("mesos.containerizers", ["mesos", "lxc"], "mesos.containerizers[1]"),
    ("mesos.containerizers", [], "mesos.containerizers"),
    ("mesos.containerizers", ["docker", "docker"], "mesos.containerizers"),
    ("mesos.containerizers", "docker", "mesos.containerizers"),
    ("mesos.attributes", {"rack": "a;b"}, "mesos.attributes.rack"),
    ("mesos.attributes", {"ra:ck": "a"}, "mesos.attributes.ra:ck"),
    ("mesos.attributes", {"rack": "a\nb"}, "mesos.attributes.rack"),
    ("mesos.attributes", {"rack": ["a"]}, "mesos.attributes.rack"),
    ("mesos.attributes", ["rack"], "mesos.attributes"),
    ("mesos.agent_flags", {"no_such_flag": "1"}, "mesos.agent_flags.no_such_flag"),
    ("mesos.agent_flags", {"quorum": "2"}, "mesos.agent_flags.quorum"),  # a master flag
    ("mesos.agent_flags", {"master": "zk://x/mesos"}, "mesos.agent_flags.master"),  # managed
    ("mesos.agent_flags", {"docker_remove_delay": "5\nmins"}, "mesos.agent_flags.docker_remove_delay"),
    ("mesos.agent_flags", {"docker_remove_delay": None}, "mesos.agent_flags.docker_remove_delay"),
    ("mesos.master_flags", {"containerizers": "docker"}, "mesos.master_flags.containerizers"),
    ("alluxio.version", "2.0", "alluxio.version"),
    ("alluxio.block_size", "4 megabytes", "alluxio.block_size"),
    ("alluxio.block_size", "0MB", "alluxio.block_size"),
    ("alluxio.block_size", "-4MB", "alluxio.block_size"),
    ("alluxio.block_size", True, "alluxio.block_size"),
    ("alluxio.worker_ramdisk", "lots", "alluxio.worker_ramdisk"),
    ("alluxio.worker_ramdisk", 0, "alluxio.worker_ramdisk"),
    ("alluxio.root_ufs", "hdfs://nn/alluxio", "alluxio.root_ufs"),
    ("alluxio.root_ufs", "s3://", "alluxio.root_ufs"),
    ("alluxio.root_ufs", "s3://Bad_Bucket/x", "alluxio.root_ufs"),
    ("alluxio.root_ufs", "/local/path", "alluxio.root_ufs"),
    ("alluxio.root_ufs", ..., "alluxio.root_ufs"),
    ("alluxio.s3_endpoint", "obs.eu-de.otc.t-systems.com", "alluxio.s3_endpoint"),
    ("alluxio.s3_endpoint", "ftp://obs.example.com", "alluxio.s3_endpoint"),
    ("alluxio.s3_endpoint", "https://", "alluxio.s3_endpoint"),
    ("alluxio.s3_endpoint", "https://user:pw@obs.example.com", "alluxio.s3_endpoint"),
    ("alluxio.s3_endpoint", "https://obs.example.com:99999", "alluxio.s3_endpoint"),
    ("alluxio", "yes", "alluxio"),
    ("credentials", ..., "credentials"),
    ("credentials.source", "iam", "credentials.source"),
    ("credentials.secret_access_key", ..., "credentials.secret_access_key"),
    ("credentials.access_key_id", ..., "credentials.access_key_id"),
    ("credentials.access_key_id", "", "credentials.access_key_id"),
    ("credentials.secret_access_key", "has space in it", "credentials.secret_access_key"),
    ("dashboard", True, "dashboard"),
    ("dashboard.auth", "no", "dashboard.auth"),
    ("dashboard.auth", 0, "dashboard.auth"),
    ("dashboard.user", "ad:min", "dashboard.user"),
    ("dashboard.user", "", "dashboard.user"),
    ("dashboard.password_hash", "{PLAIN}secretpw", "dashboard.password_hash"),
    ("dashboard.password_hash", "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", "dashboard.password_hash"),
    ("dashboard.password_hash", "secretpw", "dashboard.password_hash"),
    ("dashboard.password_hash", "$apr1$3vT8N4I8$9hN9WDxB1VEkoHsYu3HHn0\nroot:x", "dashboard.password_hash"),
    ("dashboard.tls_certificate", "-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n",
     "dashboard.tls_key"),
    ("dashboard.tls_key", "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n", "dashboard.tls_certificate"),
    ("dashboard.theme", "dark", "dashboard.theme"),
    # issue 7: RAM folders, Spark's shuffle service, the optional tools
    ("mesos.work_dir_ramdisk", "lots", "mesos.work_dir_ramdisk"),
    ("mesos.work_dir_ramdisk", "32MB", "mesos.work_dir_ramdisk"),  # too small to be meant
    ("mesos.work_dir_ramdisk", 0, "mesos.work_dir_ramdisk"),
    ("mesos.work_dir_ramdisk", True, "mesos.work_dir_ramdisk"),
    ("mesos.work_dir_ramdisk", None, "mesos.work_dir_ramdisk"),
    ("mesos.work_dir_ramdisk", "Auto", "mesos.work_dir_ramdisk"),
    ("mesos.docker_ramdisk", "2GB\n", "mesos.docker_ramdisk"),
    ("mesos.docker_ramdisk", ["2GB"], "mesos.docker_ramdisk"),
    ("mesos.docker_ramdisk", False, "mesos.docker_ramdisk"),
    ("spark", "on", "spark"),
    ("spark.shuffle_service", "yes", "spark.shuffle_service"),
    ("spark.shuffle_service", 1, "spark.shuffle_service"),
    ("spark.shuffle_port", "7337", "spark.shuffle_port"),
    ("spark.shuffle_port", 80, "spark.shuffle_port"),
    ("spark.shuffle_port", 70000, "spark.shuffle_port"),
    ("spark.shuffle_port", 7337.0, "spark.shuffle_port"),
    ("spark.shuffle_port", True, "spark.shuffle_port"),
    ("spark.shuffle_port", 5051, "spark.shuffle_port"),  # the Mesos agent's
    ("spark.shuffle_port", 29999, "spark.shuffle_port"),  # Alluxio 2.9 worker's
    ("spark.port", 7337, "spark.port"),
    ("zeppelin", True, "zeppelin"),
    ("zeppelin.enabled", "true", "zeppelin.enabled"),
    ("zeppelin.enabled", 1, "zeppelin.enabled"),
    ("zeppelin.port", 8080, "zeppelin.port"),
    ("jenkins", [], "jenkins"),
    ("jenkins.enabled", "yes", "jenkins.enabled"),
    ("jenkins.enabled", None, "jenkins.enabled"),
    ("jenkins.admin_password", "secretpw", "jenkins.admin_password"),
    # issue 13: Mesos flag values by their upstream types (stout), sizes with a floor per key
    ("mesos.agent_flags", {"gc_delay": 3}, "mesos.agent_flags.gc_delay"),  # Duration without a unit
    ("mesos.agent_flags", {"gc_delay": "3d"}, "mesos.agent_flags.gc_delay"),  # not a stout unit
    ("mesos.agent_flags", {"gc_delay": "days"}, "mesos.agent_flags.gc_delay"),
    ("mesos.agent_flags", {"fetcher_cache_size": "512"}, "mesos.agent_flags.fetcher_cache_size"),  # Bytes
    ("mesos.agent_flags", {"fetcher_cache_size": "1.5GB"}, "mesos.agent_flags.fetcher_cache_size"),
    ("mesos.agent_flags", {"hostname_lookup": "yes"}, "mesos.agent_flags.hostname_lookup"),  # bool
    ("mesos.agent_flags", {"max_completed_executors_per_framework": -1},
     "mesos.agent_flags.max_completed_executors_per_framework"),  # size_t
    ("mesos.agent_flags", {"gc_disk_headroom": "lots"}, "mesos.agent_flags.gc_disk_headroom"),  # double
    ("mesos.agent_flags", {"logbufsecs": "1.5"}, "mesos.agent_flags.logbufsecs"),  # int
    ("mesos.master_flags", {"agent_reregister_timeout": "10"}, "mesos.master_flags.agent_reregister_timeout"),
    ("alluxio.block_size", 4, "alluxio.block_size"),  # the original tool's -b 4 meant 4 MB
    ("alluxio.block_size", "512KB", "alluxio.block_size"),
    ("alluxio.worker_ramdisk", 4, "alluxio.worker_ramdisk"),
    ("mesos.work_dir_ramdisk", "2", "mesos.work_dir_ramdisk"),
]


def test_new_keys_are_optional_with_defaults_that_keep_old_user_data_meaning() -> None:
    """User-data written before issue 7 means what it meant: no RAM folders for Mesos/Docker, no tools; the
    shuffle service on agents (the original cluster had it everywhere) on port 7337."""
    settings = validate(base())
    assert settings.mesos.work_dir_ramdisk is None and settings.mesos.docker_ramdisk is None
    assert (settings.spark.shuffle_service, settings.spark.shuffle_port) == (True, 7337)
    assert not settings.zeppelin.enabled and not settings.jenkins.enabled
    auto = validate(with_("mesos.work_dir_ramdisk", "auto"))
    assert auto.mesos.work_dir_ramdisk == -1  # schema.AUTO
    assert validate(with_("mesos.docker_ramdisk", "2GB")).mesos.docker_ramdisk == 2 << 30
    assert validate(with_("mesos.work_dir_ramdisk", "off")).mesos.work_dir_ramdisk is None
    assert validate(with_("spark", {"shuffle_service": False, "shuffle_port": 29999})).spark.shuffle_service is False


def test_tool_and_ramdisk_combinations_that_cannot_work() -> None:
    no_docker = with_("mesos.docker_ramdisk", "2GB")
    no_docker["mesos"]["containerizers"] = ["mesos"]
    with pytest.raises(InvalidInput) as info:
        validate(no_docker)
    assert info.value.path == "mesos.docker_ramdisk"
    for tool in ("zeppelin", "jenkins"):
        open_tool = with_(f"{tool}.enabled", True)
        open_tool["dashboard"] = {"auth": False}
        with pytest.raises(InvalidInput) as info:
            validate(open_tool)
        assert info.value.path == f"{tool}.enabled" and "dashboard.auth" in info.value.message
        assert validate(with_(f"{tool}.enabled", True))


@pytest.mark.parametrize(("path", "value", "named"), BAD, ids=[f"{p}={v!r}"[:60] for p, v, _ in BAD])
def test_bad_field_is_named(path: str, value: Any, named: str) -> None:
    with pytest.raises(InvalidInput) as info:
        validate(with_(path, value))
    assert info.value.path == named
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("flags", "message"), [
    ({"gc_delay": 3}, "'3' has no unit; Mesos wants a duration such as 3secs, 3mins or 3days"),
    ({"gc_delay": "3d"}, "unknown duration unit 'd'"),
    ({"fetcher_cache_size": 512}, "expected a size with a unit, e.g. 512MB"),
    ({"hostname_lookup": "yes"}, "expected true or false"),
])
def test_mesos_flag_values_say_what_mesos_wants(flags: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        validate(with_("mesos.agent_flags", flags))


def test_mesos_flag_values_mesos_accepts() -> None:
    good = {"gc_delay": "3days", "executor_registration_timeout": "5mins", "fetcher_stall_timeout": "1.5secs",
            "fetcher_cache_size": "512mb", "hostname_lookup": False, "docker_config": "file:///etc/docker.json",
            "gc_disk_headroom": 0.1, "max_completed_executors_per_framework": 150, "logbufsecs": 0,
            "docker_remove_delay": "file:///etc/mesos/delay", "isolation": "cgroups/cpu,cgroups/mem"}
    settings = validate(with_("mesos.agent_flags", good))
    assert dict(settings.mesos.agent_flags)["gc_delay"] == "3days"
    assert dict(settings.mesos.agent_flags)["hostname_lookup"] == "false"


def test_every_mesos_flag_has_an_upstream_value_type() -> None:
    from bootstrap_agent import names

    kinds = {"bool", "duration", "bytes", "int", "uint", "double", "path", "string", "other"}
    for version in names.MESOS_VERSIONS:
        for role in ("master", "agent"):
            types = names.mesos_flag_types(version, role)
            assert set(types) == names.mesos_flags(version, role) and set(types.values()) <= kinds
            assert types["help"] == "bool" and types["work_dir"] == "string"
    assert names.mesos_flag_types("1.4", "agent")["gc_delay"] == "duration"
    assert names.mesos_flag_types("1.11", "agent")["fetcher_cache_size"] == "bytes"


def test_the_extractor_records_each_flags_value_type() -> None:
    from tools.extract_names import mesos_member_types

    header = """class Flags : public virtual logging::Flags
{
public:
  Duration gc_delay; // a comment with int x;
  Option<Bytes> cache;
  Option<std::vector<unsigned int>>
      gpus;
  bool quiet;
  size_t count;
  Option<Path> sandbox;
  Option<JSON::Object> env;
};"""
    assert mesos_member_types(header) == {"gc_delay": "duration", "cache": "bytes", "gpus": "other", "quiet": "bool",
                                          "count": "uint", "sandbox": "path", "env": "other"}


def test_a_block_size_without_a_unit_says_which_unit_was_meant() -> None:
    with pytest.raises(InvalidInput) as info:
        validate(with_("alluxio.block_size", 4))
    assert str(info.value) == ("alluxio.block_size: '4' is 4 bytes, less than the minimum 1MB; did you mean 4MB? "
                               "(a number without a unit is bytes)")
    assert validate(with_("alluxio.block_size", "1MB")).alluxio.block_size == 1 << 20  # type: ignore[union-attr]


def test_credentials_in_an_endpoint_url_are_never_echoed() -> None:
    for url in ("https://AKIAEXAMPLE:SECRETKEY/xyz@obs.eu-de.otc.t-systems.com",
                "https://AKIAEXAMPLE:SECRETKEY@obs.eu-de.otc.t-systems.com:99999", "ftp://AKIAEXAMPLE@x"):
        with pytest.raises(InvalidInput) as info:
            validate(with_("alluxio.s3_endpoint", url))
        assert info.value.path == "alluxio.s3_endpoint"
        assert "AKIAEXAMPLE" not in str(info.value) and "SECRETKEY" not in str(info.value), info.value
        assert "***@" in str(info.value)


def test_combinations_that_cannot_work() -> None:
    agency_18 = with_("alluxio.version", "1.8")
    agency_18["credentials"] = {"source": "agency"}
    with pytest.raises(InvalidInput, match=r"1\.8") as info:
        validate(agency_18)
    assert info.value.path == "credentials.source"

    keys_with_agency = with_("credentials.source", "agency")
    with pytest.raises(InvalidInput) as info:
        validate(keys_with_agency)
    assert info.value.path == "credentials.access_key_id"

    ha_18 = with_("alluxio.version", "1.8")
    ha_18["masters"] = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    with pytest.raises(InvalidInput, match="shared journal") as info:
        validate(ha_18)
    assert info.value.path == "alluxio.version"


def test_flags_are_checked_against_the_chosen_mesos_version() -> None:
    # cgroups_enable_cfs exists in both; a 1.11-only flag is refused for 1.4.
    from bootstrap_agent import names

    only_111 = sorted(names.mesos_flags("1.11", "agent") - names.mesos_flags("1.4", "agent"))
    assert only_111, "the lists should differ between 1.4 and 1.11"
    flag = only_111[0]
    newer = with_("mesos.agent_flags", {flag: "1"})
    newer["mesos"]["version"] = "1.11"
    validate(newer)
    newer["mesos"]["version"] = "1.4"
    with pytest.raises(InvalidInput, match=f"mesos-agent 1.4 has no flag --{flag}"):
        validate(newer)


def test_valid_documents() -> None:
    settings = validate(base())
    assert settings.role == "agent" and settings.masters == ("192.168.0.10",)
    minimal = {"schema": 1, "cluster": "c1", "role": "master", "masters": ["10.1.2.3", "10.1.2.4", "10.1.2.5"],
               "secret": "x" * 16}
    settings = validate(minimal)
    assert settings.alluxio is None and settings.mesos.version == "1.11"
    assert validate(with_("alluxio.worker_ramdisk", "12GB")).alluxio.worker_ramdisk == 12 << 30  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"[1, 2]", b"null", b'"text"', b"\xff\xfe", b"#cloud-config\nruncmd: []\n", b"[" * 30000,
     b"x" * 40000, b'{"schema": 1e999}', b'{"schema": NaN}'],
    ids=["empty", "truncated", "list", "null", "string", "not-utf8", "cloud-config", "deep", "huge", "inf", "nan"],
)
def test_garbage_is_refused_without_traceback(raw: bytes) -> None:
    with pytest.raises(InvalidInput):
        parse_user_data(raw)


def run_validate(tmp_path: Path, content: bytes) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "user-data"
    path.write_bytes(content)
    return subprocess.run([sys.executable, "-m", "bootstrap_agent.cli", "validate", str(path)],
                          capture_output=True, text=True, timeout=30)


def test_cli_exit_codes_and_one_line(tmp_path: Path) -> None:
    ok = run_validate(tmp_path, json.dumps(base()).encode())
    assert ok.returncode == 0, ok.stderr
    assert "valid" in ok.stdout

    bad = run_validate(tmp_path, json.dumps(with_("alluxio.block_size", "big")).encode())
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "alluxio.block_size" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert base()["credentials"]["secret_access_key"] not in bad.stderr + bad.stdout

    for garbage in (b"{" * 100000, b"[" * 30000, b"\x00\x01", b"[]"):
        out = run_validate(tmp_path, garbage)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr

    missing = subprocess.run([sys.executable, "-m", "bootstrap_agent.cli", "validate", str(tmp_path / "nope")],
                             capture_output=True, text=True, timeout=30)
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_cli_never_echoes_credentials_of_an_endpoint_url(tmp_path: Path) -> None:
    url = "https://CLIACCESSKEY01:cli/secret+key@obs.eu-de.otc.t-systems.com"
    bad = run_validate(tmp_path, json.dumps(with_("alluxio.s3_endpoint", url)).encode())
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "alluxio.s3_endpoint" in bad.stderr
    for secret in ("CLIACCESSKEY01", "cli/secret+key"):
        assert secret not in bad.stderr + bad.stdout


# --- no input whatsoever produces a traceback ----------------------------------------------------------------


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
PATHS = sorted({p for p, _, _ in BAD} | {"mesos", "credentials", "masters"})


@settings(max_examples=300, deadline=None)
@given(path=st.sampled_from(PATHS), value=json_values)
def test_any_value_anywhere_is_valid_or_named(path: str, value: Any) -> None:
    try:
        validate(with_(path, value))
    except InvalidInput as exc:
        assert exc.path or exc.message
        assert "\n" not in str(exc)


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_bytes_are_valid_or_refused(raw: bytes) -> None:
    with contextlib.suppress(InvalidInput):
        parse_user_data(raw)


def test_dashboard_certificates_must_be_pem_and_match_their_kind() -> None:
    cert = "-----BEGIN CERTIFICATE-----\nYWJj\n-----END CERTIFICATE-----\n"
    key = "-----BEGIN PRIVATE KEY-----\nYWJj\n-----END PRIVATE KEY-----\n"
    ok = validate(with_("dashboard", {"tls_certificate": cert, "tls_key": key}))
    assert ok.dashboard.tls_certificate == cert and key in ok.secrets()
    for bad_cert, bad_key, named in (
        (key, key, "dashboard.tls_certificate"),  # a key where the certificate goes
        (cert, cert, "dashboard.tls_key"),
        ("not pem", key, "dashboard.tls_certificate"),
        (cert.replace("YWJj", "Y W"), key, "dashboard.tls_certificate"),
        (cert + "server { }\n", key, "dashboard.tls_certificate"),  # nothing but PEM blocks
        (cert.replace("-----END CERTIFICATE-----", "-----END PRIVATE KEY-----"), key, "dashboard.tls_certificate"),
    ):
        with pytest.raises(InvalidInput) as info:
            validate(with_("dashboard", {"tls_certificate": bad_cert, "tls_key": bad_key}))
        assert info.value.path == named


def test_dashboard_hash_formats_nginx_reads() -> None:
    for good in ("$apr1$3vT8N4I8$9hN9WDxB1VEkoHsYu3HHn0",
                 "$6$M.9f/SrHFbfRgotR$nnnkqEb7kuMjOwGDKOi6uCP0WBmUTMMvk5E6zgPf/sliQX1SficHoEJgXnGLvNMYAb8CxHFn"
                 "/BGcEEDoQmM/a0"):
        assert validate(with_("dashboard.password_hash", good)).dashboard.password_hash == good
    assert validate(with_("dashboard.auth", False)).dashboard.auth is False
    assert validate(base()).dashboard.auth is True  # on unless turned off explicitly
