"""Secrets stay secret in every place other users can look (issue 14, point 4).

Everyone on a node reads ``/proc/<pid>/cmdline`` of every process, ``systemctl show -p Environment`` of every
unit, world-readable files (the services' logs, the process manager's records) and what ``status --json``
prints. A running master and agent (real daemons, real ZooKeeper and nginx, the stand-ins under the process
manager) are searched for this test's secrets in all of those; the unit files are searched for
``Environment=`` lines that could carry one, and the rendered files they name for world-readable secrets.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.daemon_node import AGENT_IPS, MASTER_IP, SECRET, DaemonNode, cluster_user_data
from tests.support.fake_otc import PASSWORD, FakeOtc
from tests.support.provision_env import Env, cluster_document

ROOT = Path(__file__).resolve().parent.parent
S3_SECRET = str(cluster_user_data("agent", alluxio=True)["credentials"]["secret_access_key"])
SECRETS = (SECRET, S3_SECRET)
SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|_KEY\b|ACCESS_KEY|CREDENTIAL", re.IGNORECASE)


def cmdlines() -> Iterator[tuple[int, str]]:
    """Every process' arguments, as any user reads them."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                yield int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue  # gone meanwhile


def world_readable_files(root: Path) -> Iterator[Path]:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath, name)
            mode = path.lstat().st_mode
            if stat.S_ISREG(mode) and mode & stat.S_IROTH:
                yield path


def leaks(text: str) -> list[str]:
    return [f"secret #{i}" for i, secret in enumerate(SECRETS) if secret in text]


def test_a_running_node_shows_no_secret_to_other_users(cluster: Callable[..., DaemonNode]) -> None:
    master = cluster("master", MASTER_IP, data=cluster_user_data("master", alluxio=True)).start()
    # Alluxio (with the S3 keys) on the master only: the nodes share one network namespace here, and both
    # roles would run an Alluxio proxy on the same port.
    agent = cluster("agent", AGENT_IPS[0]).start()
    for node in (master, agent):
        node.wait_for("ready", lambda n=node: n.status().get("state") == "ready", timeout=90)

    found = [f"pid {pid}: {where} in {line[:120]!r}" for pid, line in cmdlines() for where in leaks(line)]
    assert not found, found

    for node in (master, agent):
        for path in world_readable_files(node.root):
            with open(path, "rb") as handle:
                text = handle.read(4 << 20).decode(errors="replace")
            assert not leaks(text), f"{path.relative_to(node.root)} (mode {path.stat().st_mode & 0o777:o})"
        done = subprocess.run([sys.executable, "-m", "bootstrap_agent.cli", "status", "--json", "--root",
                               str(node.root)], capture_output=True, text=True, timeout=60, check=False)
        assert done.stdout.strip() and not leaks(done.stdout + done.stderr)
        assert not leaks(node.log_path.read_text(errors="replace"))  # the daemon's own log (journald's copy)
    # The search sees them where they belong: the master's root-only files hold both.
    private = [p for p in master.root.rglob("*") if p.is_file() and not p.stat().st_mode & stat.S_IROTH]
    assert set(SECRETS) <= {secret for p in private for secret in SECRETS if secret in p.read_text(errors="replace")}


def unit_lines(key: str) -> Iterator[tuple[Path, str]]:
    for unit in sorted((ROOT / "systemd").rglob("*")):
        if unit.is_file() and unit.suffix in (".service", ".conf", ".mount"):
            for line in unit.read_text().splitlines():
                if line.startswith(f"{key}="):
                    yield unit, line.split("=", 1)[1]


def test_no_unit_sets_a_secret_in_environment_lines() -> None:
    """``Environment=`` is shown to every user by ``systemctl show``; secrets go to root-only files."""
    lines = list(unit_lines("Environment"))
    assert lines  # the Alluxio units' Java, at least
    for unit, value in lines:
        for assignment in value.split():
            name = assignment.split("=", 1)[0]
            assert not SECRET_NAME.search(name), f"{unit.name}: Environment={assignment}"


def test_the_environment_files_of_the_units_hold_no_world_readable_secret(tmp_path: Path) -> None:
    """What the units' ``EnvironmentFile=`` name, as the agent renders it for a node with S3 keys."""
    named = {value.lstrip("-") for _unit, value in unit_lines("EnvironmentFile")}
    assert "/etc/default/alluxio" in named
    for role in ("master", "agent"):
        user_data = tmp_path / f"{role}.json"
        facts = ROOT / f"bootstrap_agent/examples/facts-{role}.json"
        master_ip = json.loads((ROOT / "bootstrap_agent/examples/facts-master.json").read_text())["ip"]
        user_data.write_text(json.dumps(dict(cluster_user_data(role, alluxio=True), masters=[master_ip])))
        out = tmp_path / f"out-{role}"
        done = subprocess.run([sys.executable, "-m", "bootstrap_agent.cli", "render", "--user-data",
                               str(user_data), "--facts", str(facts), "--out", str(out)],
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        assert not leaks(done.stdout + done.stderr)
        for path in world_readable_files(out):
            assert not leaks(path.read_text(errors="replace")), f"{role}: {path.relative_to(out)}"
        for name in filter(None, named):  # a drop-in's empty EnvironmentFile= resets the list
            path = out / name.lstrip("/")
            if path.is_file():
                assert not leaks(path.read_text()), f"{role}: EnvironmentFile {name} holds a secret"


def test_provision_min_prints_no_secret_of_its_state(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, cloud: FakeOtc) -> None:
    """``up``, ``status`` (and ``--json``, ``--verbose``) and ``plan --json`` on OTC: none shows a secret the
    state file keeps (the cluster secret, the dashboard password, any credential) or the OTC password."""
    desk = Env(tmp_path, capsys, monkeypatch)
    desk.write_cluster(cluster_document(alluxio=None, credentials=None))
    runs = [desk.run("up", "--verbose")]
    assert runs[0].code == 0, runs[0].err
    runs += [desk.run("status", "--json"), desk.run("status", "--verbose"), desk.run("plan", "--json")]
    state = json.loads(desk.state_file.read_text())
    kept = [value for key, value in _flat(state) if SECRET_NAME.search(key) and isinstance(value, str)
            and len(value) >= 8 and not value.startswith("$")]  # a password hash is no secret
    assert state["secret"] in kept and PASSWORD not in kept
    for run in runs:
        for secret in (*kept, PASSWORD):
            assert secret not in run.out + run.err, "a secret in provision-min's output"


def _flat(value: object, prefix: str = "") -> Iterator[tuple[str, object]]:
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _flat(child, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value
