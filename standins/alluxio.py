"""Stand-in for the Alluxio master, worker and proxy where the real ones cannot be installed.

It reads ``alluxio-site.properties`` exactly as ``java.util.Properties`` would, refuses every key the given
Alluxio version does not know (``alluxio.worker.memory.size`` on 2.9, ``alluxio.worker.ramdisk.size`` on
1.8, ...) and the values real Alluxio would fail on at startup (byte sizes, ports, a missing master address),
then opens the real ports and answers the web endpoints. Secret values (S3 keys) never leave the process:
they are masked in every log line and every HTTP answer.
"""

from __future__ import annotations

import argparse
import re
import socket
import socketserver
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from bootstrap_agent.names import ALLUXIO_VERSIONS, alluxio_keys
from standins import alluxio_data, alluxio_ha, alluxio_start
from standins.alluxio_start import FORMAT_COMMAND, StartRefused
from standins.alluxio_webui import web_routes
from standins.common import (
    EXIT_RUNTIME,
    MASK,
    Response,
    Route,
    fail,
    http_server,
    install_stop_handlers,
    is_secret_name,
    json_response,
    listen_address,
    log_event,
    serve,
    tcp_listener,
)
from standins.properties import PropertiesError, parse_properties

ROLES = ("master", "worker", "proxy", "job_master", "job_worker")
JOB_ROLES = ("job_master", "job_worker")  # 2.9 only: the job service (v1.8.2 has no AlluxioJobMaster)

_SIZE_UNITS: Mapping[str, int] = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "kb": 1 << 10,
    "m": 1 << 20,
    "mb": 1 << 20,
    "g": 1 << 30,
    "gb": 1 << 30,
    "t": 1 << 40,
    "tb": 1 << 40,
    "p": 1 << 50,
    "pb": 1 << 50,
}
_DECIMAL_RE = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_ADDRESS_LIST_RE = re.compile(r"^[A-Za-z0-9_.\-]+:\d{1,5}(?:,[A-Za-z0-9_.\-]+:\d{1,5})*$")


class ConfigError(ValueError):
    """Something real Alluxio would refuse at startup."""


# --- names --------------------------------------------------------------------------------------------------

# A "Templates NOT expanded" comment line of data/names/alluxio-<version>.txt, e.g.
# "#   MASTER_MOUNT_TABLE_ROOT_OPTION_PROPERTY: alluxio.master.mount.table.root.option.%s".
_TEMPLATE_LINE_RE = re.compile(r"^#\s+[A-Z][A-Z0-9_]*:\s+(\S*%s\S*)\s*$")
_SEGMENT = r"[A-Za-z0-9_]+"
_DOTTED = r"[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*"


@cache
def key_templates(version: str) -> tuple[re.Pattern[str], ...]:
    """Patterns of the templated keys the list could not enumerate (mount options, per-tier options, ...).

    Alluxio accepts any instance of them, so refusing them would reject working configurations. The list
    records them only as comments, so they are read from there: a ``%s`` matches one name segment, except a
    trailing one, which (as in Alluxio's own regexes for option keys) may be a dotted key.
    """
    alluxio_keys(version)  # the same version check and the same file as the names themselves
    text = resources.files("bootstrap_agent").joinpath("data", "names", f"alluxio-{version}.txt").read_text("utf-8")
    patterns: list[re.Pattern[str]] = []
    for line in text.splitlines():
        match = _TEMPLATE_LINE_RE.match(line)
        if match is None:
            continue
        parts = [re.escape(part) for part in match.group(1).split("%s")]
        body = _SEGMENT.join(parts[:-1]) + (_DOTTED if parts[-1] == "" else _SEGMENT + parts[-1])
        patterns.append(re.compile(f"^{body}$"))
    return tuple(patterns)


def is_known_key(version: str, key: str) -> bool:
    return key in alluxio_keys(version) or any(p.match(key) for p in key_templates(version))


# --- values -------------------------------------------------------------------------------------------------


def parse_size(text: str) -> int:
    """Bytes for an Alluxio size (``FormatUtils.parseSpaceSize``): a decimal, then an optional unit."""
    value = text.strip()
    index = len(value)
    while index > 0 and not ("0" <= value[index - 1] <= "9"):
        index -= 1
    number, unit = value[:index], value[index:].lower()
    if not _DECIMAL_RE.match(number) or unit not in _SIZE_UNITS:
        raise ValueError(f"cannot parse {text!r} as a size in bytes")
    amount = float(number)
    if amount < 0:
        raise ValueError(f"size {text!r} is negative")
    return int(amount * _SIZE_UNITS[unit] + 0.0001)


def is_size_key(key: str) -> bool:
    return key.endswith((".size", ".quota")) or ".bytes" in key


def _shown(key: str, value: str) -> str:
    return MASK if is_secret_name(key) else repr(value)


def masked(properties: Mapping[str, str]) -> dict[str, str]:
    return {k: (MASK if is_secret_name(k) else v) for k, v in properties.items()}


def _boolean(properties: Mapping[str, str], key: str) -> bool:
    value = properties.get(key, "false").strip().lower()
    if value not in ("true", "false"):
        raise ConfigError(f"{key} must be true or false, got {_shown(key, properties[key])}")
    return value == "true"


def _port(properties: Mapping[str, str], key: str) -> int:
    value = properties[key].strip()
    if not value.isdigit() or int(value) > 65535:
        raise ConfigError(f"{key} must be a port number (0-65535), got {_shown(key, properties[key])}")
    return int(value)


@dataclass(frozen=True)
class PortSpec:
    purpose: str
    keys: tuple[str, ...]
    """Keys naming this port, newest name first; the first one set wins."""
    default: int
    web: bool


def port_specs(role: str, version: str) -> tuple[PortSpec, ...]:
    """The ports each process opens; the worker's RPC port moved from 29998 to 29999 when 2.0 dropped the
    separate data port."""
    if role == "master":
        return (
            PortSpec("rpc", ("alluxio.master.rpc.port", "alluxio.master.port"), 19998, web=False),
            PortSpec("web", ("alluxio.master.web.port",), 19999, web=True),
        )
    if role == "worker":
        worker_rpc = ("alluxio.worker.rpc.port", "alluxio.worker.port")
        if version == "1.8":
            return (
                PortSpec("rpc", worker_rpc, 29998, web=False),
                PortSpec("data", ("alluxio.worker.data.port",), 29999, web=False),
                PortSpec("web", ("alluxio.worker.web.port",), 30000, web=True),
            )
        return (
            PortSpec("rpc", worker_rpc, 29999, web=False),
            PortSpec("web", ("alluxio.worker.web.port",), 30000, web=True),
        )
    if role == "job_master":  # v2.9.3 PropertyKey JOB_MASTER_RPC_PORT / JOB_MASTER_WEB_PORT
        return (
            PortSpec("rpc", ("alluxio.job.master.rpc.port",), 20001, web=False),
            PortSpec("web", ("alluxio.job.master.web.port",), 20002, web=True),
            # JOB_MASTER_EMBEDDED_JOURNAL_PORT: its Raft journal, held whatever its role (as the master's 19200)
            PortSpec("journal", ("alluxio.job.master.embedded.journal.port",), 20003, web=False),
        )
    if role == "job_worker":  # JOB_WORKER_RPC_PORT / JOB_WORKER_DATA_PORT / JOB_WORKER_WEB_PORT
        return (
            PortSpec("rpc", ("alluxio.job.worker.rpc.port",), 30001, web=False),
            PortSpec("data", ("alluxio.job.worker.data.port",), 30002, web=False),
            PortSpec("web", ("alluxio.job.worker.web.port",), 30003, web=True),
        )
    return (PortSpec("web", ("alluxio.proxy.web.port",), 39999, web=True),)


def resolve_ports(role: str, version: str, properties: Mapping[str, str]) -> dict[str, tuple[int, bool]]:
    ports: dict[str, tuple[int, bool]] = {}
    for spec in port_specs(role, version):
        key = next((k for k in spec.keys if k in properties), None)
        ports[spec.purpose] = (_port(properties, key) if key else spec.default, spec.web)
    return ports


def validate(role: str, version: str, properties: Mapping[str, str]) -> None:
    """Refuse what real Alluxio refuses before it serves; unknown keys are checked by the caller first."""
    known = alluxio_keys(version)
    zookeeper = _boolean(properties, "alluxio.zookeeper.enabled")
    zk_address = properties.get("alluxio.zookeeper.address", "").strip()
    if zookeeper and not zk_address:
        raise ConfigError("alluxio.zookeeper.address is required when alluxio.zookeeper.enabled=true")
    if zk_address and not _ADDRESS_LIST_RE.match(zk_address):
        raise ConfigError("alluxio.zookeeper.address must be host:port[,host:port...]")
    embedded_key = "alluxio.master.embedded.journal.addresses"
    embedded = properties.get(embedded_key, "").strip() if embedded_key in known else ""
    if embedded and not _ADDRESS_LIST_RE.match(embedded):
        raise ConfigError(f"{embedded_key} must be host:port[,host:port...]")
    if not properties.get("alluxio.master.hostname", "").strip() and not (zookeeper or embedded):
        alternatives = "alluxio.zookeeper.enabled=true with alluxio.zookeeper.address"
        if embedded_key in known:
            alternatives += f", or {embedded_key}"
        raise ConfigError(f"alluxio.master.hostname is required (or {alternatives})")
    for key, value in properties.items():
        if is_size_key(key) and "${" not in value:
            parts = value.split(",") if key.endswith(".quota") else [value]
            for part in parts:
                try:
                    parse_size(part)
                except ValueError:
                    raise ConfigError(
                        f"{key}: cannot parse {_shown(key, value)} as a byte size (e.g. 4MB, 512MB, 1GB)"
                    ) from None
    resolve_ports(role, version, properties)


# --- serving ------------------------------------------------------------------------------------------------


def _bind_host(role: str, properties: Mapping[str, str]) -> str:
    if role == "master":
        return properties.get("alluxio.master.hostname", "").strip() or "0.0.0.0"
    if role == "worker":
        return properties.get("alluxio.worker.hostname", "").strip() or "0.0.0.0"
    if role == "job_master":
        return (properties.get("alluxio.job.master.hostname", "").strip()
                or properties.get("alluxio.master.hostname", "").strip() or "0.0.0.0")
    if role == "job_worker":
        return (properties.get("alluxio.job.worker.hostname", "").strip()
                or properties.get("alluxio.worker.hostname", "").strip() or "0.0.0.0")
    return properties.get("alluxio.proxy.web.bind.host", "").strip() or "0.0.0.0"


def _advertised_host(role: str, properties: Mapping[str, str]) -> str:
    key = "alluxio.master.hostname" if role == "master" else "alluxio.worker.hostname"
    return properties.get(key, "").strip() or socket.gethostname()


def _routes(role: str, version: str, properties: Mapping[str, str], rpc_port: int | None) -> dict[str, Route]:
    info: dict[str, Any] = {
        "version": f"{version}.0",
        "standin": True,
        "configuration": masked(properties),
        "startTimeMs": int(time.time() * 1000),
    }
    if rpc_port is not None:
        info["rpcAddress"] = f"{_advertised_host(role, properties)}:{rpc_port}"
    page = f"<html><body>alluxio-{role} {version} (stand-in)</body></html>".encode()
    routes: dict[str, Route] = {
        "/": lambda: Response(200, page, "text/html"),
        f"/api/v1/{role}/info": lambda: json_response(info),
    }
    if role in ("master", "worker"):  # the web UI at the real one's absolute paths (alluxio_webui.py)
        routes.update(web_routes(role, version, info))
    return routes


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m standins.alluxio",
        description="Stand-in for the Alluxio master, worker or proxy.",
        allow_abbrev=False,
    )
    parser.add_argument("role", choices=(*ROLES, FORMAT_COMMAND))
    parser.add_argument("--alluxio-version", required=True, choices=ALLUXIO_VERSIONS)
    parser.add_argument("--conf", required=True, help="path of alluxio-site.properties")
    alluxio_start.add_arguments(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    stop = install_stop_handlers()
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    role: str = args.role
    version: str = args.alluxio_version
    program = f"alluxio-{role}"
    label = f"{program} {version}"
    try:
        # ISO-8859-1, as Properties.load(InputStream) reads it.
        with open(args.conf, "rb") as handle:
            text = handle.read().decode("latin-1")
    except OSError as exc:
        fail(label, f"cannot read {args.conf}: {exc.strerror or exc}")
    try:
        properties = parse_properties(text)
        for key in properties:
            if not is_known_key(version, key):
                fail(label, f"unknown property {key if key.isprintable() else ascii(key)}")
        if role in JOB_ROLES and version == "1.8":
            main_class = "master.AlluxioJobMaster" if role == "job_master" else "worker.AlluxioJobWorker"
            fail(label, f"Error: Could not find or load main class alluxio.{main_class}")
        if role == FORMAT_COMMAND:
            log_event("journal_formatted", version=version, **alluxio_start.format_command(version, properties, args))
            return 0
        validate(role, version, properties)
        started = alluxio_start.check_start(role, version, properties, args)
    except (ConfigError, PropertiesError) as exc:
        fail(label, str(exc))
    except StartRefused as exc:
        fail(label, str(exc), EXIT_RUNTIME)
    host = _bind_host(role, properties)
    servers: list[socketserver.TCPServer] = []
    rpc_port: int | None = None
    for purpose, (port, web) in resolve_ports(role, version, properties).items():
        if web:
            server = http_server(label, host, port)
            servers.append(server)
            web_server = server
        else:
            servers.append(tcp_listener(label, host, port))
            if purpose == "rpc":
                rpc_port = servers[-1].server_address[1]
                rpc_server = servers[-1]
    web_server.routes = _routes(role, version, properties, rpc_port)
    alluxio_data.attach(role, version, properties, web_server, stop)
    journal = alluxio_ha.embedded_journal(version, properties) if role == "master" else None
    if journal is not None:  # 2.9: the Raft journal's port, and RPC/web served only as the role says
        servers.append(alluxio_ha.start_roles(label, host, journal, properties, rpc_server, web_server, stop))
    log_event(
        "standin_started",
        program=program,
        version=version,
        keys=sorted(properties),
        **started,
        listen=[listen_address(s) for s in servers],
    )
    return serve(servers, stop)


if __name__ == "__main__":
    sys.exit(main())
