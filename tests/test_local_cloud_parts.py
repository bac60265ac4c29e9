"""The local cloud's parts that need no containers: names, subnets, the state file, the answers each instance
gets from the metadata service, the progress display, and the refusals that come before anything is made."""

from __future__ import annotations

import dataclasses
import io
import ipaddress
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from bootstrap_agent.otc_signing import parse_expiry
from bootstrap_agent.schema import decode_user_data, validate
from provision_min import cli
from provision_min import config as config_mod
from provision_min.errors import InputError
from provision_min.local import cloud, metadata_host, network, node_image, readiness, subnets
from provision_min.local.layout import STATE_ROOT_ENV, CloudState, Names, NodeRecord, Paths
from provision_min.local.plan_local import LocalPlan
from provision_min.local.progress import Progress, Row
from provision_min.rollout import MasterRollout, Rollout

EXAMPLE = Path(config_mod.__file__).parent / "examples" / "cluster.yaml"
HASH = "$6$vk.5fz6E2dydvNwx$UUHiEOJ1lpEg1FAMgkh/FTwCWsDajNpXzE1VS0H5OwhlOU7JEjlkFhjk34djKUyL/kZVv76MkIRI.4X8dvi8j1"
DOCUMENTED_META_KEYS = {"uuid", "availability_zone", "hostname", "name", "project_id", "meta"}  # otc-api.md


def a_state(**kw: Any) -> CloudState:
    values: dict[str, Any] = dict(cluster="analytics11", subnet="10.231.3.0/24", image="/var/cache/x/node-1",
                                  image_digest="1", secret="s" * 43, dashboard_password="pw",
                                  dashboard_password_hash=HASH, desired=2)
    values.update(kw)
    return CloudState(**values)


def test_interface_names_fit_linux_and_differ_per_cluster() -> None:
    longest = Names("a" * 32)
    for name in (longest.bridge, longest.gateway_veth, longest.metadata_veth):
        assert len(name) <= 15, name
    assert Names("eo").bridge != Names("eo-x").bridge
    assert longest.machine("agent", 12) == "a" * 32 + "-agent-12"
    assert Names("eo").machine_pattern.fullmatch("eo-agent-3")
    assert not Names("eo").machine_pattern.fullmatch("eo-x-agent-3")  # another cluster's instance


def test_subnet_is_the_first_slash24_no_host_interface_or_other_cluster_uses() -> None:
    pool = ipaddress.IPv4Network("10.231.0.0/16")
    host = [ipaddress.IPv4Interface("10.231.0.7/24"), ipaddress.IPv4Interface("192.168.1.5/24")]
    taken = [ipaddress.IPv4Network("10.231.1.0/24")]
    assert network.choose_subnet(taken, pool, host) == ipaddress.IPv4Network("10.231.2.0/24")
    wide = [ipaddress.IPv4Interface("10.231.0.1/16")]  # a host network covering the whole pool
    assert network.choose_subnet([], pool, wide) is None


def test_addresses_of_a_cluster_follow_the_otc_rules() -> None:
    state = a_state()
    assert (state.gateway_ip, state.host_ip, state.metadata_subnet_ip) == ("10.231.3.1", "10.231.3.2", "10.231.3.254")
    assert state.agent_ip(1) == "10.231.3.100" and state.agent_ip(154) == "10.231.3.253"
    with pytest.raises(InputError, match="no address left"):
        state.agent_ip(155)  # .254 is the metadata service's
    config = config_mod.load(EXAMPLE)
    local = subnets.local_config(config, state.network)
    assert local.master_ips == ("10.231.3.10",)  # network + 10, as on OTC


def test_state_file_round_trip_is_private_and_refuses_garbage(tmp_path: Path) -> None:
    paths = Paths(tmp_path / "c")
    state = a_state(nodes=[NodeRecord("analytics11-agent-1", "agent", 1, "10.231.3.100", "u-1", 1.0)])
    paths.save(state)
    assert paths.state_file.stat().st_mode & 0o777 == 0o600
    assert paths.load() == state
    assert "s" * 43 not in repr(state) and "pw" not in repr(state).replace("password", "")
    paths.state_file.write_text('{"version": 1, "cluster": 3}')
    paths.state_file.chmod(0o600)
    with pytest.raises(InputError, match="not a local-cloud state file"):
        paths.load()


def test_each_instance_gets_valid_user_data_and_documented_meta_data(tmp_path: Path) -> None:
    config = config_mod.load(EXAMPLE)
    state = a_state(cluster=config.cluster)
    paths = Paths(tmp_path / "c")
    master = NodeRecord(f"{config.cluster}-master-1", "master", 1, "10.231.3.10", "5b0c6a32-9d63", 1.0)
    agent = NodeRecord(f"{config.cluster}-agent-1", "agent", 1, "10.231.3.100", "6c1d7b43-9d63", 1.0)
    for node in (master, agent):
        metadata_host.publish(paths, config, state, node)
        folder = paths.metadata_dir / node.ip
        assert {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()} == {
            "user_data": 0o600, "meta_data.json": 0o600, "securitykey": 0o600}
        # the agency's temporary keys, fresh per instance, in the documented shape
        credential = json.loads((folder / "securitykey").read_text())["credential"]
        assert set(credential) == {"access", "secret", "securitytoken", "expires_at"}
        assert 3500 < (parse_expiry(credential["expires_at"]) or 0) - time.time() <= 3600
        settings = validate(decode_user_data((folder / "user_data").read_bytes()))
        assert settings.role == node.role and list(settings.masters) == ["10.231.3.10"]
        assert settings.secret == state.secret
        meta = json.loads((folder / "meta_data.json").read_text())
        assert set(meta) >= DOCUMENTED_META_KEYS and meta["uuid"] == node.uuid
        assert meta["hostname"] == f"{node.name}.novalocal"
    master_doc = json.loads((paths.metadata_dir / master.ip / "user_data").read_text())
    agent_doc = json.loads((paths.metadata_dir / agent.ip / "user_data").read_text())
    assert master_doc["dashboard"] == {"user": "admin", "password_hash": HASH}
    assert "dashboard" not in agent_doc  # the password hash goes only where it is used
    metadata_host.unpublish(paths, agent)
    assert not (paths.metadata_dir / agent.ip).exists()
    with pytest.raises(InputError, match=r"dashboard\.password_hash"):  # checked like every user-data
        metadata_host.user_data(config, a_state(cluster=config.cluster, dashboard_password_hash="plain"), "master")


def test_the_cluster_files_dashboard_login_replaces_the_generated_one(tmp_path: Path) -> None:
    """``dashboard: {user, password_hash}`` in the cluster file: the master gets them, no password of ours."""
    config = dataclasses.replace(config_mod.load(EXAMPLE), dashboard={"user": "ops", "password_hash": HASH})
    state = a_state(cluster=config.cluster, dashboard_user="ops", dashboard_password="", dashboard_password_hash="")
    assert metadata_host.user_data(config, state, "master")["dashboard"] == {"user": "ops", "password_hash": HASH}
    assert "dashboard" not in metadata_host.user_data(config, state, "agent")
    paths = Paths(tmp_path / "c")
    assert cloud.login(config, state, paths).hint() == (
        "user ops, the password whose hash is dashboard.password_hash in the cluster file")
    generated = a_state(cluster=config.cluster)
    plain = config_mod.load(EXAMPLE)
    expected = f"user admin, password: dashboard_password in {paths.state_file}"
    assert cloud.login(plain, generated, paths).hint() == expected


def test_local_down_lists_and_removes_nothing_unless_confirmed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STATE_ROOT_ENV, str(tmp_path / "state"))
    config = config_mod.load(EXAMPLE)
    paths = Paths.of(config.cluster)
    paths.save(a_state(cluster=config.cluster))
    shown: list[list[str]] = []

    def refuse(items: list[str]) -> None:
        shown.append(items)
        raise InputError("down: not confirmed")

    with pytest.raises(InputError, match="not confirmed"):
        cloud.down(config, refuse)
    assert shown == [[f"state {paths.root} (the cluster secret and the dashboard password)"]]
    assert paths.load() is not None and paths.load().phase != "removing"  # untouched
    gone = cloud.down(config, shown.append)
    assert gone.removed == [f"state {paths.root}"] and not paths.root.exists()


def test_dashboard_password_hash_is_one_nginx_accepts() -> None:
    hashed = metadata_host.hash_password("correct horse")
    assert hashed.startswith("$6$") and "correct horse" not in hashed
    check = subprocess.run(["openssl", "passwd", "-6", "-salt", hashed.split("$")[2], "-stdin"],
                           input="correct horse", capture_output=True, text=True, check=True)
    assert check.stdout.strip() == hashed


def test_progress_is_one_line_per_change_off_a_terminal_and_a_redrawn_table_on_one() -> None:
    plain = io.StringIO()
    progress = Progress(plain, title="t", interactive=False)
    progress.update([Row("m1", "master", "10.0.0.10", "booting"), Row("a1", "agent", "10.0.0.100", "booting")])
    progress.update([Row("m1", "master", "10.0.0.10", "ready"), Row("a1", "agent", "10.0.0.100", "booting")])
    lines = plain.getvalue().splitlines()
    assert len(lines) == 3 and lines[-1].split()[1:] == ["m1", "master", "10.0.0.10", "ready"]
    tty = io.StringIO()
    live = Progress(tty, title="t", interactive=True)
    live.update([Row("m1", "master", "10.0.0.10", "booting")])
    live.update([Row("m1", "master", "10.0.0.10", "ready")])
    out = tty.getvalue()
    assert "\x1b[2F" in out and out.rstrip().endswith("ready")  # the second drawing overwrote the first


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "provision_min", *args], capture_output=True, text=True,
                          env=env, timeout=60, check=False)


def test_missing_tools_are_refused_before_anything_is_made(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the not-root refusal comes first")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ip").symlink_to("/usr/sbin/ip" if Path("/usr/sbin/ip").exists() else "/sbin/ip")
    env = {**os.environ, "PATH": str(bin_dir), STATE_ROOT_ENV: str(tmp_path / "state")}
    result = run_cli(["up", "--cloud", "local", "--config", str(EXAMPLE)], env)
    assert result.returncode == 2
    assert "the local cloud needs systemd-nspawn, debootstrap" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "state").exists()
    assert Names("analytics11").bridge not in subprocess.run(["ip", "-o", "link"], capture_output=True,
                                                             text=True).stdout


def test_not_root_is_refused_before_anything_is_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(STATE_ROOT_ENV, str(tmp_path / "state"))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    for command in (["up"], ["scale", "2"], ["down", "--yes"]):
        assert cli.main([*command, "--cloud", "local", "--config", str(EXAMPLE)]) == 2
        assert "the local cloud needs root" in capsys.readouterr().err
    assert not (tmp_path / "state").exists()


def test_scale_outside_the_group_bounds_and_a_bad_subnet_are_input_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(STATE_ROOT_ENV, str(tmp_path / "state"))
    assert cli.main(["scale", "11", "--cloud", "local", "--config", str(EXAMPLE)]) == 2
    assert "outside agents.min..agents.max (1..10)" in capsys.readouterr().err
    with pytest.raises(InputError, match="private /24"):
        subnets.pick_subnet("analytics11", "8.8.8.0/24")
    with pytest.raises(InputError, match="private /24"):
        subnets.pick_subnet("analytics11", "10.231.0.0/16")
    busy = network.host_ipv4_networks()[0]
    if busy.network.prefixlen <= 24:
        inside_host = next(busy.network.subnets(new_prefix=24))
        if inside_host.is_private:
            with pytest.raises(InputError, match="overlaps"):
                subnets.pick_subnet("analytics11", str(inside_host))
    assert not (tmp_path / "state").exists()


def test_a_second_command_on_the_same_cluster_is_refused_while_one_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if os.geteuid() != 0 or cloud.shutil.which("systemd-nspawn") is None:
        pytest.skip("the root and tool refusals come first")
    monkeypatch.setenv(STATE_ROOT_ENV, str(tmp_path / "state"))
    with Paths.of("analytics11").locked():
        assert cli.main(["scale", "2", "--cloud", "local", "--config", str(EXAMPLE)]) == 2
        assert "another provision-min is working on cluster analytics11" in capsys.readouterr().err
    assert cli.main(["scale", "2", "--cloud", "local", "--config", str(EXAMPLE)]) == 2  # free again: no cluster
    assert "does not run locally: up first" in capsys.readouterr().err


def test_the_node_image_has_the_cluster_files_versions_and_packages_when_given() -> None:
    config = config_mod.load(EXAMPLE)
    options = node_image.image_options(config, None)
    assert (options.standins, options.mesos_version, options.alluxio_version) == (True, "1.11", "2.9")
    older = config_mod.parse({**yaml.safe_load(EXAMPLE.read_text()), "mesos": {"version": "1.4"},
                              "alluxio": {"version": "1.8", "root_ufs": "s3://eo-data/alluxio"}}, EXAMPLE)
    options = node_image.image_options(older, ("/srv/mesos.deb", "/srv/alluxio.tar.gz"))
    assert (options.standins, options.mesos_version, options.alluxio_version) == (False, "1.4", "1.8")
    assert (options.mesos_deb, options.alluxio_tarball) == ("/srv/mesos.deb", "/srv/alluxio.tar.gz")


class _Store:
    """The two methods of the cluster store that ``read_members`` uses, answering as told."""

    def __init__(self, raises: BaseException | None) -> None:
        self.raises = raises

    def connected(self) -> bool:
        return True

    def members(self) -> list[Any]:
        if self.raises is not None:
            raise self.raises
        return []


def test_status_polls_report_an_outage_as_none_and_a_bug_as_a_bug() -> None:
    """ZooKeeper away: None, asked again on the next poll. Anything else is a bug and must not become a
    600 s wait for "ZooKeeper unreachable"."""
    from bootstrap_agent.cluster import ClusterUnavailable

    assert readiness.read_members(_Store(None)) == {}
    assert readiness.read_members(_Store(ClusterUnavailable("members: ZooKeeper unreachable"))) is None
    with pytest.raises(TypeError):
        readiness.read_members(_Store(TypeError("a bug")))


def test_plan_of_a_cluster_that_does_not_run_says_what_up_would_start_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(STATE_ROOT_ENV, str(tmp_path / "state"))
    config = config_mod.load(EXAMPLE)
    assert cli.main(["plan", "--cloud", "local", "--config", str(EXAMPLE), "--detailed-exitcode"]) == 3
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"cluster {config.cluster} (local): does not run", out
    assert (f"start: the cluster's network, metadata service and AS service, {config.masters} master(s) and the "
            f"AS group {config.cluster}-agents with {config.agents.desired} agent(s)") in out
    assert cli.main(["plan", "--cloud", "local", "--config", str(EXAMPLE), "--json"]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert (planned["running"], planned["changes"], planned["replace"]) == (False, True, [])
    assert not (tmp_path / "state").exists()  # nothing written, nothing started


def test_plan_lines_show_a_blocked_replacement_once_and_not_as_nothing_to_change() -> None:
    rollout = Rollout(None, MasterRollout((), "a single master cannot be replaced while the cluster keeps working"))
    planned = LocalPlan("eo", True, replace=rollout.lines(), blocked=rollout.blocked(), replacing=not rollout.empty)
    shown = planned.lines()
    assert shown == ["cluster eo (local): runs",
                     "  masters NOT replaced: a single master cannot be replaced while the cluster keeps working"]
    assert planned.changes is False  # up would change nothing: --detailed-exitcode 0
