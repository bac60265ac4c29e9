"""The local cloud driven as a user drives it: ``provision-min ... --cloud local`` as subprocesses, one cluster
file and one state folder per test, and a list of what the cluster left on this machine (for the clean-up
checks). Used by the end-to-end tests and the local cloud's benchmark."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bootstrap_agent.autoscaling import AkSkAuth, AutoScaling, Group
from bootstrap_agent.otc_signing import SigningKey
from provision_min.local import machine
from provision_min.local.layout import STATE_ROOT_ENV, Names

CLUSTER_FILE = """\
cluster: {cluster}
region: eu-de
availability_zone: eu-de-02
vpc_cidr: 192.168.0.0/16
subnet_cidr: 192.168.0.0/24
masters: {masters}
master_flavor: s3.xlarge.4
agent_flavor: s3.2xlarge.8
image_id: 00000000-0000-0000-0000-000000000000
key_name: my-keypair
agents: {{min: 1, max: {max_agents}, desired: {desired}}}
mesos: {{version: "1.11", containerizers: [docker, mesos], work_dir_ramdisk: 256MB, docker_ramdisk: 256MB}}
alluxio: {{version: "2.9", root_ufs: "s3://eo-data/alluxio", worker_ramdisk: 512MB}}
credentials: {{source: keys, access_key_id: EXAMPLEACCESSKEY0001, secret_access_key: {s3_secret}}}
"""
S3_SECRET = "local-e2e-secret-access-key-0000000000000"


class LocalCloud:
    """The CLI against one cluster file, with its own state folder."""

    def __init__(self, tmp_path: Path, cluster: str, env: dict[str, str] | None = None) -> None:
        self.cluster = cluster
        self.names = Names(cluster)
        self.config = tmp_path / f"{cluster}.yaml"
        self.write(masters=1, desired=2)
        self.state_root = tmp_path / "local-state"
        self.env = {**os.environ, STATE_ROOT_ENV: str(self.state_root), **(env or {})}

    def write(self, *, masters: int, desired: int, max_agents: int = 6) -> None:
        self.config.write_text(CLUSTER_FILE.format(cluster=self.cluster, s3_secret=S3_SECRET, masters=masters,
                                                   desired=desired, max_agents=max_agents))

    def argv(self, *args: str) -> list[str]:
        """The command with this cloud's options, before a ``--`` (what follows it is a remote command)."""
        options = ["--cloud", "local", "--config", str(self.config)]
        split = args.index("--") if "--" in args else len(args)
        return [sys.executable, "-m", "provision_min", *args[:split], *options, *args[split:]]

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), capture_output=True, text=True, env=self.env, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)

    def ok(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        result = self.run(*args, timeout=timeout)
        assert result.returncode == 0, f"{args}: exit {result.returncode}\n{result.stdout}\n{result.stderr[-3000:]}"
        return result

    def status(self) -> dict[str, Any]:
        report: dict[str, Any] = json.loads(self.run("status", "--json", timeout=60).stdout)
        return report

    @property
    def state_file(self) -> Path:
        return self.state_root / self.cluster / "cloud.json"

    def agents_group(self) -> tuple[AutoScaling, Group]:
        """The operator's AS client (the AK/SK ``up`` keeps in ``cloud.json``) and the cluster's agents' group."""
        saved = json.loads(self.state_file.read_text())
        key = SigningKey(saved["as_access_key"], saved["as_secret_key"])
        asc = AutoScaling(saved["as_endpoint"], AkSkAuth(lambda: key))
        group = asc.find_group(f"{self.cluster}-agents")
        assert group is not None, "the agents' group is missing"
        return asc, group

    def dashboard_password(self) -> str:
        return str(json.loads(self.state_file.read_text())["dashboard_password"])

    # -- what this machine holds of the cluster ---------------------------------------------------------------
    def leftovers(self) -> list[str]:
        found = []
        links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=False).stdout
        found += [f"link {line.split(':')[1].strip()}" for line in links.splitlines()
                  if line.split(":")[1].strip().split("@")[0].startswith(self.names.bridge)]
        namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
        found += [f"netns {ns.split()[0]}" for ns in namespaces.splitlines()
                  if ns.split() and ns.split()[0] in (self.names.gateway_ns, self.names.metadata_ns)]
        for hierarchy in machine.cgroup_folders(""):
            found += [f"cgroup {cg}" for cg in hierarchy.glob(f"bal-{self.cluster}-*")]
        with open("/proc/self/mounts") as mounts:
            found += [f"mount {line.split()[1]}" for line in mounts if str(self.state_root) in line]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and str(self.state_root) in " ".join(machine.cmdline(int(entry.name))):
                found.append(f"process {entry.name} {' '.join(machine.cmdline(int(entry.name)))[:120]}")
        if (self.state_root / self.cluster).exists():
            found.append(f"folder {self.state_root / self.cluster}")
        if (self.state_root / f".{self.cluster}.lock").exists():
            found.append(f"lock file {self.state_root / f'.{self.cluster}.lock'}")
        return found


@contextmanager
def torn_down(cloud: LocalCloud) -> Iterator[LocalCloud]:
    """The cloud for one test; then ``down`` (also when the test failed) and a check that nothing is left."""
    try:
        yield cloud
    finally:
        result = cloud.run("down", "--yes", timeout=300)
        left = cloud.leftovers()
        assert result.returncode == 0, result.stderr[-3000:]
        assert left == [], left


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["name"]: n for n in report["nodes"]}


def ready_names(report: dict[str, Any]) -> set[str]:
    return {n["name"] for n in report["nodes"] if n["running"] and n["member"] and n["member"]["state"] == "ready"}


def inside(pid: int, argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nsenter", "-t", str(pid), "-a", *argv], capture_output=True, text=True, timeout=30,
                          env={"PATH": machine.CONTAINER_PATH}, check=False)
