"""The run-time allow-list (issue 14): `config set` and the daemon accept only documented tunables.

Every Mesos flag of every supported version is classified in data/runtime-tunables.txt; each refused class
gives one line naming the key and the CLI refuses before it contacts ZooKeeper (here there is none: a refusal
that tried to write would fail differently); each allowed type checks its values; the docs table is the file.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bootstrap_agent import names
from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.schema import validate, with_overrides
from bootstrap_agent.schema.runtime import runtime_leaves, tunables

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cr3t-allowlist-0123456789"

# One key of each refused class, with a value an attacker would write.
REFUSED = [
    ("mesos.agent_flags.launcher_dir", "/tmp/evil", "executable"),
    ("mesos.agent_flags.docker", "/tmp/evil/docker", "executable"),
    ("mesos.agent_flags.modules", '{"libraries": [{"file": "/tmp/evil.so"}]}', "module"),
    ("mesos.agent_flags.hooks", "org_apache_mesos_EvilHook", "module"),
    ("mesos.agent_flags.isolation", "filesystem/linux,evil/isolator", "module"),
    ("mesos.agent_flags.container_logger", "org_apache_mesos_EvilLogger", "module"),
    ("mesos.master_flags.modules_dir", "/tmp/evil", "module"),
    ("mesos.agent_flags.executor_environment_variables", '{"LD_PRELOAD": "/tmp/evil.so"}', "executor"),
    ("mesos.agent_flags.switch_user", "false", "executor"),
    ("mesos.agent_flags.fetcher_cache_dir", "/tmp/evil", "directory"),
    ("mesos.agent_flags.docker_config", '{"auths": {}}', "credential"),
    ("mesos.agent_flags.credential", "/tmp/cred", "credential"),
    ("mesos.master_flags.root_submissions", "true", "security"),
    ("mesos.agent_flags.hadoop_home", "/tmp/evil", "executable"),
    ("mesos.master_flags.registry", "in_memory", "structural"),
    ("mesos.master_flags.weights", "a=1", "unchecked"),
    ("mesos.containerizers", '["mesos", "docker"]', "containerizer"),
    ("alluxio.s3_endpoint", "https://evil.example", "destination"),
    ("dashboard.auth", "false", "login"),
    ("zeppelin.enabled", "true", "runs-code"),
]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bootstrap_agent.cli", *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


def agent_document() -> dict[str, Any]:
    """The example agent's user-data (Docker on, an Alluxio section), with this test's secret."""
    document: dict[str, Any] = json.loads((ROOT / "bootstrap_agent/examples/agent.json").read_text())
    return dict(document, secret=SECRET)


@pytest.mark.parametrize(("key", "value", "kind"), REFUSED, ids=[r[0] for r in REFUSED])
def test_each_refused_class_is_one_line_naming_the_key(key: str, value: str, kind: str, tmp_path: Path) -> None:
    done = cli("config", "set", key, value, "--root", str(tmp_path))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and "nothing changed" in lines[0], done.stderr
    assert f"({kind}:" in lines[0] and done.stdout == ""
    assert not any(tmp_path.iterdir())  # wrote nothing, not even its state folder


def test_a_refused_key_inside_an_object_is_named() -> None:
    with pytest.raises(InvalidInput) as caught:
        runtime_leaves({"mesos": {"agent_flags": {"gc_delay": "1days", "launcher_dir": "/tmp/evil"}}})
    assert caught.value.path == "mesos.agent_flags.launcher_dir"


@pytest.mark.parametrize(("overrides", "field"), [
    ({"mesos.agent_flags.nope": "1"}, "mesos.agent_flags.nope"),
    ({"mesos.agent_flags": "gc_delay=1days"}, "mesos.agent_flags"),
    ({"alluxio.block_size": None}, "alluxio.block_size"),
    ({"mesos.agent_flags.gc_delay": "file:///etc/shadow"}, "mesos.agent_flags.gc_delay"),
])
def test_unknown_whole_section_removal_and_file_values_are_refused(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        runtime_leaves(overrides)
    assert caught.value.path == field


ALLOWED = [  # key, a good value, a bad value of its type
    ("mesos.agent_flags.docker_remove_delay", "1mins", "1"),
    ("mesos.agent_flags.gc_delay", "2days", "2 days"),
    ("mesos.agent_flags.fetcher_cache_size", "2GB", "2"),
    ("mesos.agent_flags.gc_disk_headroom", "0.2", "a lot"),
    ("mesos.agent_flags.enforce_container_ports", "true", "yes"),
    ("mesos.agent_flags.max_completed_executors_per_framework", "50", "-1"),
    ("mesos.agent_flags.logging_level", "WARNING", "DEBUG"),
    ("mesos.agent_flags.default_role", "spark", "a role"),
    ("mesos.attributes.rack", "r7", "r7;evil:1"),
    ("mesos.work_dir_ramdisk", "1GB", "lots"),
    ("alluxio.block_size", "8MB", "8"),
    ("spark.shuffle_service", True, "maybe"),
    ("spark.shuffle_port", 7338, 80),
]


@pytest.mark.parametrize(("key", "good", "bad"), ALLOWED, ids=[a[0] for a in ALLOWED])
def test_allowed_tunables_pass_with_their_type_checked(key: str, good: Any, bad: Any) -> None:
    document = agent_document()
    validate(with_overrides(document, {key: good}))
    with pytest.raises(InvalidInput) as caught:
        validate(with_overrides(document, {key: bad}))
    assert caught.value.path == key and SECRET not in str(caught.value)


def test_master_flags_are_checked_on_masters_too() -> None:
    document = dict(agent_document(), role="master")
    validate(with_overrides(document, {"mesos.master_flags.offer_timeout": "30secs"}))
    with pytest.raises(InvalidInput):
        validate(with_overrides(document, {"mesos.master_flags.offer_timeout": "30"}))


def test_a_run_time_object_adds_to_the_user_data_and_never_replaces_it() -> None:
    document = agent_document()
    document["mesos"] = {"agent_flags": {"isolation": "filesystem/linux,docker/runtime"}}
    document.pop("alluxio")
    merged = with_overrides(document, {"mesos.agent_flags": {"gc_delay": "1days"}})
    assert merged["mesos"]["agent_flags"] == {"isolation": "filesystem/linux,docker/runtime", "gc_delay": "1days"}


def test_user_data_may_still_set_what_run_time_may_not() -> None:
    document = dict(agent_document())
    document["mesos"] = {"agent_flags": {"launcher_dir": "/usr/libexec/mesos", "isolation": "filesystem/linux"}}
    settings = validate(document)
    assert ("launcher_dir", "/usr/libexec/mesos") in settings.mesos.agent_flags


def test_every_mesos_flag_of_every_version_is_classified() -> None:
    table = tunables()
    for version in names.MESOS_VERSIONS:
        for role in ("agent", "master"):
            for flag, value_type in names.mesos_flag_types(version, role).items():
                entry = table.get(f"mesos.{role}_flags.{flag}")
                assert entry is not None, f"mesos-{role} {version} --{flag} is not classified"
                if entry.allowed:
                    assert entry.kind in (value_type, "level", "role"), (flag, entry.kind, value_type)
                    assert entry.kind != "string" and value_type not in ("path", "other")


def test_the_docs_table_is_the_allow_list() -> None:
    text = (ROOT / "docs/node-agent.md").read_text()
    section = text.split("### Run-time configuration", 1)[1].split("\n## ", 1)[0]
    documented = dict(re.findall(r"^\| `([a-z0-9_.*]+)` \| ([a-z]+) \|", section, re.MULTILINE))
    allowed = {key: entry.kind for key, entry in tunables().items() if entry.allowed}
    assert documented == allowed


def test_config_get_and_null_removal_are_not_refused(tmp_path: Path) -> None:
    """Removing any override narrows the config: it passes the allow-list (and then needs the cluster)."""
    done = cli("config", "set", "mesos.agent_flags.launcher_dir", "null", "--root", str(tmp_path))
    assert done.returncode != 0 and "refused at run time" not in done.stderr  # no user-data here: not refused
