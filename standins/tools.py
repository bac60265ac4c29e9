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
import errno
import ipaddress
import json
import os
import re
import socketserver
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from bootstrap_agent.names import listed
from standins.common import (
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
)
from standins.spark import spark_class

DOCKER_KEYS_FILE = "docker-20.10-daemon.txt"
#: Where the image unpacks Zeppelin (``bin/zeppelin.sh`` sets ZEPPELIN_HOME to the folder above itself).
ZEPPELIN_HOME = "/opt/zeppelin"
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


# --- Spark external shuffle service: bin/spark-class, in standins/spark.py ----------------------


# --- Zeppelin and Jenkins ------------------------------------------------------------------------------------
def _zeppelin_dir(environ: Mapping[str, str], name: str, default: str) -> str:
    """A ZeppelinConfiguration path: relative ones count from ZEPPELIN_HOME (``getAbsoluteDir``)."""
    value = environ.get(name) or default
    return value if value.startswith("/") else os.path.join(environ.get("ZEPPELIN_HOME", ZEPPELIN_HOME), value)


def zeppelin_writable_dirs(environ: Mapping[str, str], context_path: str) -> None:
    """Zeppelin 0.11 writes two places before it listens; refuse, with its message, where it would fail.

    * ``ZeppelinServer.setupWebAppContext``: the WAR's temp dir is ``ZEPPELIN_WAR_TEMPDIR`` (default
      ``webapps`` below ZEPPELIN_HOME) + the context path; Jetty 9.4's ``WebInfConfiguration.
      configureTempDirectory`` then fails with "Unable to create temp dir ..." or "... not useable".
    * ``InterpreterSettingManager.init`` saves ``interpreter.json`` at every start (``LocalConfigStorage``,
      ``FileUtils.atomicWriteToFile``: a temp file beside it) into ``ZEPPELIN_CONFIG_FS_DIR``, else the conf dir.
    """
    program = "zeppelin"
    temp = _zeppelin_dir(environ, "ZEPPELIN_WAR_TEMPDIR", "webapps") + context_path
    try:
        os.makedirs(temp, exist_ok=True)
    except OSError:
        fail(program, f"java.lang.IllegalStateException: Unable to create temp dir {temp}")
    if not os.access(temp, os.W_OK) or not os.path.isdir(temp):
        fail(program, f"java.lang.IllegalStateException: Temp dir {temp} not useable: "
                      f"writeable={str(os.access(temp, os.W_OK)).lower()}, dir={str(os.path.isdir(temp)).lower()}")
    config = _zeppelin_dir(environ, "ZEPPELIN_CONFIG_FS_DIR", _zeppelin_dir(environ, "ZEPPELIN_CONF_DIR", "conf"))
    path = config
    try:
        os.makedirs(config, exist_ok=True)  # Files.createDirectories
        path = os.path.join(config, f"interpreter.json{os.getpid()}.tmp")  # Files.createTempFile beside it
        handle, probe = tempfile.mkstemp(prefix="interpreter.json", suffix=".tmp", dir=config)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):
            fail(program, f"java.nio.file.AccessDeniedException: {path}")
        fail(program, f"java.nio.file.FileSystemException: {path}: {exc.strerror}")


def web_tool(program: str, environ: Mapping[str, str], addr: str, port: str, prefix: str) -> int:
    stop = install_stop_handlers()
    host = _address(program, addr, environ.get(addr))
    number = _port(program, port, environ.get(port))
    base = environ.get(prefix, "/").rstrip("/")
    if base and not _PREFIX.match(base):
        fail(program, f"{prefix} must be / or /name, got {environ.get(prefix)!r}")
    if program == "zeppelin":
        zeppelin_writable_dirs(environ, base)
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
    parser = argparse.ArgumentParser(prog="python -m standins.tools", description=__doc__)
    sub = parser.add_subparsers(dest="program", required=True)
    docker_cmd = sub.add_parser("docker", help="dockerd: reads --config-file, answers on -H unix://PATH")
    docker_cmd.add_argument("--config-file", default="/etc/docker/daemon.json")
    docker_cmd.add_argument("-H", "--host", default="unix:///run/docker.sock")
    spark_cmd = sub.add_parser("spark-class", help="Spark's bin/spark-class running the Mesos shuffle service")
    spark_cmd.add_argument("main_class", nargs=argparse.REMAINDER, help="the class and its arguments")
    sub.add_parser("zeppelin", help="Zeppelin: ZEPPELIN_ADDR, ZEPPELIN_PORT, ZEPPELIN_SERVER_CONTEXT_PATH")
    sub.add_parser("jenkins", help="Jenkins: JENKINS_LISTEN_ADDRESS, JENKINS_PORT, JENKINS_PREFIX")
    args = parser.parse_args(argv)
    env = os.environ if environ is None else environ
    if args.program == "docker":
        return docker(args.config_file, args.host)
    if args.program == "spark-class":
        return spark_class(args.main_class, env)
    if args.program == "zeppelin":
        return web_tool("zeppelin", env, "ZEPPELIN_ADDR", "ZEPPELIN_PORT", "ZEPPELIN_SERVER_CONTEXT_PATH")
    return web_tool("jenkins", env, "JENKINS_LISTEN_ADDRESS", "JENKINS_PORT", "JENKINS_PREFIX")


if __name__ == "__main__":
    sys.exit(main())
