"""Stand-ins for the agents' and masters' extra services: dockerd, Spark's shuffle service, Zeppelin, Jenkins.

Like the Mesos and Alluxio stand-ins they exist where the real programs cannot run (these build machines,
the tests, the local cloud): each reads its configuration exactly where and how the real program does
(``/etc/docker/daemon.json``; the ``SPARK_*``, ``ZEPPELIN_*`` and ``JENKINS_*`` variables of its
``EnvironmentFile=``), refuses what the real program would refuse (unknown daemon.json keys, unknown Spark
properties, a malformed port or address) with one line on stderr and exit 2, and then listens where the real
one listens: dockerd on its unix socket (``GET /_ping``), the shuffle service on its TCP port, Zeppelin and
Jenkins on their HTTP port below their URL prefix. Only the standard library: tests start many of them.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import shlex
import socketserver
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from bootstrap_agent.names import listed
from bootstrap_agent.standins.common import (
    Response,
    RoutedHTTPServer,
    RouteHandler,
    fail,
    http_server,
    install_stop_handlers,
    json_response,
    listen_address,
    log_event,
    serve,
    tcp_listener,
)

DOCKER_KEYS_FILE = "docker-20.10-daemon.txt"
SPARK_KEYS_FILE = "spark-shuffle.txt"
_DAEMON_MEMORY = re.compile(r"^\d+[kmgKMG]$")
_PREFIX = re.compile(r"^/[A-Za-z0-9._-]+$")


class _UnixHTTPServer(socketserver.ThreadingUnixStreamServer):
    """HTTP over a unix socket, as dockerd answers on ``/run/docker.sock``."""

    daemon_threads = True
    routes: Mapping[str, object] = {}


def _port(program: str, name: str, value: str | None) -> int:
    if value is None or not value.isdigit() or not 1 <= int(value) <= 65535:
        fail(program, f"{name} must be a port number, got {value!r}")
    return int(value)


def _address(program: str, name: str, value: str | None) -> str:
    try:
        return str(ipaddress.ip_address(value or ""))
    except ValueError:
        fail(program, f"{name} must be an IP address, got {value!r}")


# --- dockerd ------------------------------------------------------------------------------------------------
def docker(config_file: str, host: str) -> int:
    program = "dockerd"
    stop = install_stop_handlers()
    try:
        config = json.loads(Path(config_file).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        fail(program, f"unable to configure the Docker daemon with file {config_file}: {exc}")
    if not isinstance(config, dict):
        fail(program, f"{config_file}: not a JSON object")
    known = listed(DOCKER_KEYS_FILE)
    for key in sorted(config):
        if key not in known:
            fail(program, f"the following directives don't match any configuration option: {key}")
    if "hosts" in config:
        fail(program, "the following directives are specified both as a flag and in the configuration file: hosts")
    data_root = config.get("data-root", "/var/lib/docker")
    if not isinstance(data_root, str) or not data_root.startswith("/"):
        fail(program, f"data-root must be an absolute path, got {data_root!r}")
    Path(data_root).mkdir(parents=True, exist_ok=True)
    if not host.startswith("unix://"):
        fail(program, f"the stand-in listens on a unix socket only, got -H {host}")
    path = host[len("unix://"):]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if os.path.exists(path):
        os.unlink(path)  # dockerd removes a stale socket too
    server = _UnixHTTPServer(path, RouteHandler)
    os.chmod(path, 0o660)
    info = {"DockerRootDir": data_root, "LiveRestoreEnabled": bool(config.get("live-restore", False)),
            "LoggingDriver": config.get("log-driver", "json-file"), "ServerVersion": "20.10.24+standin"}
    server.routes = {
        "/_ping": lambda: Response(200, b"OK", "text/plain"),
        "/version": lambda: json_response({"Version": "20.10.24+standin", "ApiVersion": "1.41"}),
        "/info": lambda: json_response(info),
    }
    log_event("standin_started", program=program, socket=path, data_root=data_root)
    try:
        return serve([server], stop)
    finally:
        if os.path.exists(path):
            os.unlink(path)


# --- Spark external shuffle service ---------------------------------------------------------------------------
def spark_properties(program: str, opts: str) -> dict[str, str]:
    """``-Dspark.x=y`` words of ``SPARK_SHUFFLE_OPTS``/``SPARK_DAEMON_JAVA_OPTS``; unknown Spark keys refused."""
    known = listed(SPARK_KEYS_FILE)
    props: dict[str, str] = {}
    for word in shlex.split(opts):
        if not word.startswith("-D"):
            continue  # other JVM options
        key, sep, value = word[2:].partition("=")
        if key.startswith("spark.") and key not in known:
            fail(program, f"unknown property {key} (from -D{key})")
        props[key] = value if sep else "true"
    return props


def spark_shuffle(environ: Mapping[str, str]) -> int:
    program = "spark-shuffle"
    stop = install_stop_handlers()
    memory = environ.get("SPARK_DAEMON_MEMORY", "1g")
    if not _DAEMON_MEMORY.match(memory):
        fail(program, f"SPARK_DAEMON_MEMORY must look like 512m or 1g, got {memory!r}")
    props = spark_properties(program, environ.get("SPARK_DAEMON_JAVA_OPTS", "") + " " +
                             environ.get("SPARK_SHUFFLE_OPTS", ""))
    host = _address(program, "SPARK_LOCAL_IP", environ.get("SPARK_LOCAL_IP"))
    port = _port(program, "spark.shuffle.service.port", props.get("spark.shuffle.service.port", "7337"))
    server = tcp_listener(program, host, port)
    log_event("standin_started", program=program, listen=listen_address(server), heap=memory)
    return serve([server], stop)


# --- Zeppelin and Jenkins ------------------------------------------------------------------------------------
def web_tool(program: str, environ: Mapping[str, str], addr: str, port: str, prefix: str) -> int:
    stop = install_stop_handlers()
    host = _address(program, addr, environ.get(addr))
    number = _port(program, port, environ.get(port))
    base = environ.get(prefix, "/").rstrip("/")
    if base and not _PREFIX.match(base):
        fail(program, f"{prefix} must be / or /name, got {environ.get(prefix)!r}")
    server: RoutedHTTPServer = http_server(program, host, number)
    page = f"<!doctype html><title>{program} (stand-in)</title><h1>{program} (stand-in)</h1>\n".encode()
    server.routes = {
        f"{base}/": lambda: Response(200, page, "text/html"),
        f"{base}/api/version" if program == "zeppelin" else f"{base}/api/json":
            lambda: json_response({"program": program, "standin": True}),
    }
    log_event("standin_started", program=program, listen=listen_address(server), prefix=base or "/")
    return serve([server], stop)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bootstrap_agent.standins.tools", description=__doc__)
    sub = parser.add_subparsers(dest="program", required=True)
    docker_cmd = sub.add_parser("docker", help="dockerd: reads --config-file, answers on -H unix://PATH")
    docker_cmd.add_argument("--config-file", default="/etc/docker/daemon.json")
    docker_cmd.add_argument("-H", "--host", default="unix:///run/docker.sock")
    sub.add_parser("spark-shuffle", help="Spark's external shuffle service: SPARK_* variables")
    sub.add_parser("zeppelin", help="Zeppelin: ZEPPELIN_ADDR, ZEPPELIN_PORT, ZEPPELIN_SERVER_CONTEXT_PATH")
    sub.add_parser("jenkins", help="Jenkins: JENKINS_LISTEN_ADDRESS, JENKINS_PORT, JENKINS_PREFIX")
    args = parser.parse_args(argv)
    env = os.environ if environ is None else environ
    if args.program == "docker":
        return docker(args.config_file, args.host)
    if args.program == "spark-shuffle":
        return spark_shuffle(env)
    if args.program == "zeppelin":
        return web_tool("zeppelin", env, "ZEPPELIN_ADDR", "ZEPPELIN_PORT", "ZEPPELIN_SERVER_CONTEXT_PATH")
    return web_tool("jenkins", env, "JENKINS_LISTEN_ADDRESS", "JENKINS_PORT", "JENKINS_PREFIX")


if __name__ == "__main__":
    sys.exit(main())
