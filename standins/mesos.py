"""Stand-in for ``mesos-master`` / ``mesos-agent`` where the real binaries cannot be installed.

It takes its flags the way the systemd units hand them to the real binary (``MESOS_<FLAG>`` variables from
``EnvironmentFile=``, or ``--flag=value``), refuses every name the given version and role does not know and
the value syntax real Mesos would refuse, then listens on the real port and answers the endpoints the rest of
the system reads (``/health``, ``/version``, ``/state``). A rendered ``/etc/default/mesos-*`` that passes here
but not on a real cluster is a hole in the name lists, not in the rendering tests. The agent also refuses the
node's systemd/cgroup layout where the real one does, and a unit that would kill its executors
(``mesos_cgroups.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sys
from collections.abc import Mapping, Sequence
from typing import Any, cast

from bootstrap_agent.names import MESOS_VERSIONS, MesosRole, mesos_flags
from standins.common import (
    EXIT_RUNTIME,
    MASK,
    Response,
    Route,
    fail,
    install_stop_handlers,
    is_secret_name,
    json_response,
    listen_address,
    log_event,
    serve,
)
from standins.mesos_agent import AgentRuntime
from standins.mesos_cgroups import StartupError, check_kill_mode, check_systemd
from standins.mesos_http import api_server
from standins.mesos_master import MasterRuntime

ENV_PREFIX = "MESOS_"
DEFAULT_PORTS: Mapping[str, int] = {"master": 5050, "agent": 5051}

# Flags whose value may carry a secret inline (JSON credentials, docker auth) rather than a path.
_SECRET_FLAGS = frozenset({"docker_config", "http_credentials", "credential", "credentials"})

_HOST_PORT = r"[A-Za-z0-9_.\-]+:\d{1,5}|\[[0-9A-Fa-f:.]+\]:\d{1,5}"
_ZK_RE = re.compile(
    rf"^zk://(?:(?P<auth>[^@/]+)@)?(?P<hosts>(?:{_HOST_PORT})(?:,(?:{_HOST_PORT}))*)(?P<path>/[^\s/]\S*)$"
)
_HOST_PORT_RE = re.compile(rf"^(?:{_HOST_PORT})$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-/]+(?:\([^()]*\))?$")
_NUMBER_RE = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_RANGE_RE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


class FlagError(ValueError):
    """A flag value that real Mesos would refuse at startup."""


def _program(role: str) -> str:
    return f"mesos-{role}"


def collect_flags(role: MesosRole, version: str, environ: Mapping[str, str], argv: Sequence[str]) -> dict[str, str]:
    """Environment first, then the command line on top, as stout does; every name must be known."""
    known = mesos_flags(version, role)
    label = f"{_program(role)} {version}"
    flags: dict[str, str] = {}
    for key in sorted(environ):
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if name not in known:
            fail(label, f"unknown flag --{name} (from {key})")
        flags[name] = environ[key]
    for arg in argv:
        if not arg.startswith("--") or arg == "--":
            fail(label, f"unexpected argument {arg!r}: flags are given as --name=value")
        name, sep, value = arg[2:].partition("=")
        name = name.lower()
        if not sep:
            # A bare --name sets a boolean; --no-name clears it, as stout parses them.
            if name not in known and name.startswith("no-") and name[3:] in known:
                name, value = name[3:], "false"
            else:
                value = "true"
        if name not in known:
            fail(label, f"unknown flag --{name} (from the command line)")
        flags[name] = value
    return flags


def _mask_zk(value: str) -> str:
    match = _ZK_RE.match(value)
    if match is None or match.group("auth") is None:
        return value
    user = match.group("auth").split(":", 1)[0]
    return f"zk://{user}:{MASK}@{match.group('hosts')}{match.group('path')}"


def masked_flags(flags: Mapping[str, str]) -> dict[str, str]:
    """Flags as they may be logged or served: ZooKeeper passwords and inline credentials hidden."""
    shown: dict[str, str] = {}
    for name, value in flags.items():
        if name in _SECRET_FLAGS or is_secret_name(name):
            shown[name] = MASK
        elif value.startswith("zk://"):
            shown[name] = _mask_zk(value)
        else:
            shown[name] = value
    return shown


def _check_zk(flag: str, value: str) -> None:
    if _ZK_RE.match(value) is None:
        raise FlagError(f"--{flag} must look like zk://host:port[,host:port...]/path")
    for port in re.findall(r":(\d+)(?=[,/])", value.split("@")[-1]):
        _check_port(flag, port)


def _check_port(flag: str, value: str) -> int:
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        raise FlagError(f"--{flag} must be a port number (0-65535), got {value!r}")
    return int(value)


def _parse_number(text: str) -> float | None:
    # Python's float() also takes "1_000", "inf" and "nan", which Mesos's numify does not.
    if _NUMBER_RE.match(text) is None:
        return None
    return float(text)


def _parse_ranges(flag: str, text: str) -> list[tuple[int, int]]:
    inner = text.strip()[1:-1]
    ranges: list[tuple[int, int]] = []
    for part in inner.split(","):
        match = _RANGE_RE.match(part)
        if match is None:
            raise FlagError(f"--{flag}: bad range {part.strip()!r} in {text!r}, expected begin-end")
        begin, end = int(match.group(1)), int(match.group(2))
        if begin > end:
            raise FlagError(f"--{flag}: bad range {part.strip()!r} in {text!r}, begin is after end")
        ranges.append((begin, end))
    return ranges


def _format_ranges(ranges: list[tuple[int, int]]) -> str:
    return "[" + ", ".join(f"{b}-{e}" for b, e in ranges) + "]"


def _parse_set(flag: str, text: str) -> list[str]:
    items = [item.strip() for item in text.strip()[1:-1].split(",")]
    if any(not item for item in items):
        raise FlagError(f"--{flag}: bad set {text!r}, empty item")
    return items


def _pairs(flag: str, text: str) -> list[tuple[str, str]]:
    """Split ``name:value;name:value`` the way Mesos tokenizes it (empty items skipped, one ':' each)."""
    pairs: list[tuple[str, str]] = []
    for item in re.split(r"[;\n]", text):
        if not item.strip():
            continue
        parts = [p for p in item.split(":") if p != ""]
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise FlagError(f"--{flag}: bad item {item.strip()!r}, expected name:value")
        pairs.append((parts[0].strip(), parts[1].strip()))
    return pairs


def parse_resources(text: str) -> dict[str, float | str]:
    """Parse ``--resources`` into the shape ``/state`` shows: scalars as numbers, ranges and sets as text."""
    stripped = text.strip()
    if stripped.startswith("["):
        return _parse_json_resources(stripped)
    resources: dict[str, float | str] = {}
    for name, value in _pairs("resources", text):
        if _NAME_RE.match(name) is None:
            raise FlagError(f"--resources: bad resource name {name!r}")
        base = name.split("(", 1)[0]
        if value.startswith("["):
            if not value.endswith("]"):
                raise FlagError(f"--resources: unterminated range for {name!r}")
            shown: float | str = _format_ranges(_parse_ranges("resources", value))
        elif value.startswith("{"):
            if not value.endswith("}"):
                raise FlagError(f"--resources: unterminated set for {name!r}")
            shown = "{" + ",".join(_parse_set("resources", value)) + "}"
        else:
            number = _parse_number(value)
            if number is None:
                raise FlagError(f"--resources: {name!r} must be a number, a range [a-b] or a set {{a,b}}")
            if number < 0:
                raise FlagError(f"--resources: {name!r} must not be negative")
            shown = number
        if base in resources:
            raise FlagError(f"--resources: {base!r} given twice")
        resources[base] = shown
    return resources


def _parse_json_resources(text: str) -> dict[str, float | str]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FlagError(f"--resources: invalid JSON ({exc.msg})") from None
    if not isinstance(items, list):
        raise FlagError("--resources: JSON must be a list of resource objects")
    resources: dict[str, float | str] = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise FlagError("--resources: every JSON resource needs a name")
        kind = item.get("type", "SCALAR")
        if kind == "SCALAR":
            value = item.get("scalar", {}).get("value")
            if not isinstance(value, int | float) or value < 0:
                raise FlagError(f"--resources: {item['name']!r} needs a non-negative scalar value")
            resources[item["name"]] = float(value)
        elif kind == "RANGES":
            ranges = item.get("ranges", {}).get("range", [])
            try:
                pairs = [(int(r["begin"]), int(r["end"])) for r in ranges]
            except (KeyError, TypeError, ValueError):
                raise FlagError(f"--resources: {item['name']!r} has malformed ranges") from None
            resources[item["name"]] = _format_ranges(pairs)
        else:
            raise FlagError(f"--resources: unsupported type {kind!r} for {item['name']!r}")
    return resources


def parse_attributes(text: str) -> dict[str, float | str]:
    """Parse ``--attributes``: numbers become scalars, as ``/state`` shows them; the rest stays text."""
    attributes: dict[str, float | str] = {}
    for name, value in _pairs("attributes", text):
        if _NAME_RE.match(name) is None or "(" in name:
            raise FlagError(f"--attributes: bad attribute name {name!r}")
        if value.startswith("["):
            if not value.endswith("]"):
                raise FlagError(f"--attributes: unterminated range for {name!r}")
            attributes[name] = _format_ranges(_parse_ranges("attributes", value))
            continue
        if value.startswith("{"):
            if not value.endswith("}"):
                raise FlagError(f"--attributes: unterminated set for {name!r}")
            attributes[name] = "{" + ",".join(_parse_set("attributes", value)) + "}"
            continue
        if re.search(r"\s", value):
            raise FlagError(f"--attributes: value of {name!r} contains whitespace")
        number = _parse_number(value)
        attributes[name] = number if number is not None else value
    return attributes


def validate(role: MesosRole, flags: Mapping[str, str]) -> None:
    """Refuse what the real binary refuses before it binds: missing required flags and malformed values."""
    if "work_dir" not in flags or not flags["work_dir"].strip():
        raise FlagError("--work_dir is required")
    if "port" in flags:
        _check_port("port", flags["port"])
    if role == "master":
        if "zk" in flags:
            _check_zk("zk", flags["zk"])
            quorum = flags.get("quorum")
            if quorum is None:
                raise FlagError("--quorum is required with --zk")
            if not quorum.isdigit() or int(quorum) < 1:
                raise FlagError(f"--quorum must be a positive integer, got {quorum!r}")
        elif "quorum" in flags and (not flags["quorum"].isdigit() or int(flags["quorum"]) < 1):
            raise FlagError(f"--quorum must be a positive integer, got {flags['quorum']!r}")
    else:
        master = flags.get("master")
        if master is None or not master.strip():
            raise FlagError("--master is required (zk://host:port/path or host:port)")
        if master.startswith("zk://"):
            _check_zk("master", master)
        elif _HOST_PORT_RE.match(master) is None:
            raise FlagError("--master must be zk://host:port[,host:port...]/path or host:port")
        else:
            _check_port("master", master.rsplit(":", 1)[1])
    if "resources" in flags:
        parse_resources(flags["resources"])
    if "attributes" in flags:
        parse_attributes(flags["attributes"])


def _routes(role: MesosRole, version: str, flags: Mapping[str, str], listen: str) -> dict[str, Route]:
    full_version = f"{version}.0"
    shown = masked_flags(flags)
    hostname = flags.get("hostname") or socket.gethostname()
    pid_name = "master" if role == "master" else "slave(1)"
    pid = f"{pid_name}@{listen}"

    def health() -> Response:
        return Response(200, b"", "text/plain")

    def version_info() -> Response:
        return json_response({"version": full_version, "standin": True})

    routes: dict[str, Route] = {"/health": health, "/version": version_info}
    if role == "master":
        state: dict[str, Any] = {
            "version": full_version,
            "hostname": hostname,
            "cluster": flags.get("cluster"),
            "flags": shown,
            "pid": pid,
            "slaves": [],
            "frameworks": [],
            "standin": True,
        }
        routes["/state"] = routes["/master/state"] = lambda: json_response(state)
    else:
        state = {
            "version": full_version,
            "hostname": hostname,
            "flags": shown,
            "pid": pid,
            "resources": parse_resources(flags["resources"]) if "resources" in flags else {},
            "attributes": parse_attributes(flags["attributes"]) if "attributes" in flags else {},
            "standin": True,
        }
        routes["/state"] = routes["/slave(1)/state"] = lambda: json_response(state)
    return routes


def _parse_args(argv: Sequence[str]) -> tuple[MesosRole, str, list[str]]:
    parser = argparse.ArgumentParser(
        prog="python -m standins.mesos",
        description="Stand-in for mesos-master/mesos-agent; further arguments are --flag=value Mesos flags.",
        allow_abbrev=False,
    )
    parser.add_argument("role", choices=["master", "agent"])
    parser.add_argument("--mesos-version", required=True, choices=MESOS_VERSIONS)
    args, rest = parser.parse_known_args(argv)
    return cast(MesosRole, args.role), cast(str, args.mesos_version), rest


def main(argv: Sequence[str] | None = None) -> int:
    stop = install_stop_handlers()
    role, version, rest = _parse_args(sys.argv[1:] if argv is None else argv)
    program = _program(role)
    flags = collect_flags(role, version, os.environ, rest)
    try:
        validate(role, flags)
    except FlagError as exc:
        fail(f"{program} {version}", str(exc))
    systemd: dict[str, Any] = {}
    if role == "agent":
        try:  # after the flags, as the real agent initializes systemd only once they loaded (main.cpp)
            support = check_systemd(version, flags)
            systemd = {"support": support, "unit": check_kill_mode(flags, support)}
        except StartupError as exc:
            fail(f"{program} {version}", str(exc), EXIT_RUNTIME)
    host = flags.get("ip", "0.0.0.0")
    port = int(flags.get("port", DEFAULT_PORTS[role]))
    server = api_server(f"{program} {version}", host, port)
    listen = listen_address(server)
    routes = _routes(role, version, flags, listen)
    hostname = flags.get("hostname") or socket.gethostname()
    runtime: MasterRuntime | AgentRuntime
    if role == "master":  # the web UI, the leader, the cluster view and its APIs (mesos_master.py)
        runtime = MasterRuntime(version, flags, hostname, listen, routes)
    else:  # registering with the leader, running tasks (mesos_agent.py)
        runtime = AgentRuntime(version, flags, hostname, listen, routes, stop)
    runtime.attach(server)
    server.routes = routes
    log_event("standin_started", program=program, version=version, flags=masked_flags(flags), listen=[listen],
              **({"systemd": systemd} if systemd else {}))
    try:
        return serve([server], stop)
    finally:
        runtime.close()


if __name__ == "__main__":
    sys.exit(main())
