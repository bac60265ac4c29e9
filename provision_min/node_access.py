"""``ssh`` and ``logs``: a shell, a command or a unit's journal on one node, named as ``status`` lists it.

The original cluster's first step after provisioning was "ssh to the master and start spark-shell"; this is
that step for both clouds, with the same names and the same one-line errors:

* OTC: ``ssh`` through the master's public address as the jump host (only the master has one; agents are
  reachable from the cluster's subnet only), with the cluster's key pair. Host keys are pinned on first use in a
  known-hosts file of the cluster's own beside its state file, so they never mix with the user's.
* local: into the container's namespaces with ``nsenter`` (a container has no sshd of its own to trust).

A remote command is given as words and run by the node's shell joined by spaces, exactly as ``ssh host -- a b``
does, so a command line behaves the same on both clouds. The journal is read with ``journalctl`` on the node.
This module is pure: it names the node and builds the argv; the clouds run it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from provision_min.errors import InputError

DEFAULT_UNIT = "bootstrap-agent"
DEFAULT_LINES = 200
DEFAULT_USER = "linux"  # the login of OTC's public Debian images, which our image is built from
_UNIT_RE = re.compile(r"^[A-Za-z0-9@:._\\-]+$")
# The environment a container shell starts with: nsenter keeps the caller's, which is this machine's.
CONTAINER_ENV = ("TERM", "LANG", "LC_ALL")
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class NodeRef:
    """One node as ``status`` lists it."""

    name: str
    role: str
    ip: str
    running: bool = True


def find_node(nodes: Sequence[NodeRef], wanted: str, cluster: str) -> NodeRef:
    """The node named ``wanted`` (its name, or its private address); a one-line error for an unknown node or
    one that is off."""
    found = [n for n in nodes if wanted in (n.name, n.ip)]
    if not found:
        names = ", ".join(n.name for n in nodes) or "none"
        raise InputError(f"{wanted}: no such node in cluster {cluster} (nodes: {names})")
    node = found[0]
    if not node.running:
        raise InputError(f"{node.name}: is not running (powered off); provision-min up starts it again")
    return node


def check_unit(unit: str) -> str:
    if not _UNIT_RE.match(unit):
        raise InputError(f"{unit!r}: not a systemd unit name")
    return unit


def journal_command(unit: str, follow: bool, lines: int) -> list[str]:
    """``journalctl`` on the node, for one unit, without a pager."""
    if lines < 0:
        raise InputError("--lines: must be >= 0")
    words = ["journalctl", "--no-pager", "-u", check_unit(unit), "-n", str(lines)]
    return [*words, "-f"] if follow else words


def remote_line(command: Sequence[str]) -> str:
    """What the node's shell runs: the words joined by spaces, as ssh does (quoting is the caller's)."""
    return " ".join(command)


def nsenter_argv(pid: int, command: Sequence[str], env: dict[str, str]) -> list[str]:
    """Enter every namespace of the container whose PID 1 (systemd) is ``pid``, as root, with a clean login
    environment: a login shell without a command, else ``/bin/sh -c`` with the joined words."""
    keep = [f"{k}={v}" for k, v in sorted(env.items()) if k in CONTAINER_ENV]
    inner = ["/bin/bash", "-l"] if not command else ["/bin/sh", "-c", remote_line(command)]
    return ["nsenter", "--target", str(pid), "--mount", "--uts", "--ipc", "--net", "--pid", "--cgroup",
            "--root", "--wd", "--", "/usr/bin/env", "-i", f"PATH={CONTAINER_PATH}", "HOME=/root", "USER=root",
            *keep, *inner]


@dataclass(frozen=True)
class SshRoute:
    """How to reach a node on OTC: the public address (bound to the master whose private address is
    ``front_ip``), and every other node's private address behind it."""

    public_ip: str
    front_ip: str
    user: str
    known_hosts: Path
    identity: Path | None = None

    def options(self) -> list[str]:
        opts = ["-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=accept-new"]
        if self.identity is not None:
            opts += ["-i", str(self.identity), "-o", "IdentitiesOnly=yes"]
        return opts

    def argv(self, node: NodeRef, command: Sequence[str], *, tty: bool) -> list[str]:
        """``ssh`` to the node: directly for the master that holds the public address, else with that master
        as the jump host (``-J``; the jump uses the same key and pinned host keys)."""
        argv = ["ssh", *self.options()]
        if tty:
            argv.append("-t")
        if node.ip == self.front_ip:
            argv.append(f"{self.user}@{self.public_ip}")
        else:
            jump = shlex.join(["ssh", *self.options(), "-W", "%h:%p", f"{self.user}@{self.public_ip}"])
            argv += ["-o", f"ProxyCommand={jump}", f"{self.user}@{node.ip}"]
        if command:
            argv += ["--", remote_line(command)]
        return argv


def sudo(words: Sequence[str]) -> list[str]:
    """The journal of system units needs root (or the adm group) on the node."""
    return ["sudo", *words]
