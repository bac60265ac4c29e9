"""One cloud node per network namespace: real addresses and ports, nothing on the host's interfaces.

A ``TestNode`` is a network namespace whose ``lo`` carries the node's private IPv4 addresses as /32, so the
agent and the services it starts can bind e.g. 10.77.0.10 and 127.0.0.1:80 (the node's nginx metadata
cache) without touching the host and without colliding with other nodes or other test runs. Test traffic
stays on loopback inside the namespace.

Three ways to run something in the node:

* ``node.run(argv)`` / ``node.popen(argv)``: a process, via ``ip netns exec``.
* ``node.call(fn, *args, **kwargs)``: a Python callable in a fresh thread of *this* process that first
  entered the namespace with ``setns``; the result is returned, an exception re-raised. The network
  namespace is per thread, and threads started by that thread inherit it, so
  ``node.call(client.start)`` with a ``KazooClient`` starts kazoo's connection thread inside the node and
  the client keeps talking to the node's addresses afterwards. Sockets keep the namespace they were created
  in, whichever thread uses them later.
* ``node.http_get(url)``: a plain HTTP GET from inside the node (no proxies, no redirects).

Teardown (``close()``, ``__exit__``, also when the body raised): SIGTERM to every process in the namespace,
up to ``term_timeout`` (5 s) for them to go, SIGKILL for the rest, then ``ip netns del``. Namespaces are
named ``ba-<pid>-<n>``; ``cleanup_stale()`` removes those whose creating process is gone (a crashed run)
and leaves the live ones of concurrent runs alone.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import dataclasses
import http.client
import ipaddress
import itertools
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from .waiting import wait_for

P = ParamSpec("P")
T = TypeVar("T")

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")
NAME_PREFIX = "ba-"
_NAME_RE = re.compile(r"^ba-(\d+)-(\d+)$")
_counter = itertools.count(1)
_live_nodes: set[TestNode] = set()  # strong refs: a node dropped unclosed is still closed at exit
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


class NetnsError(RuntimeError):
    """An ``ip`` command failed, or a namespace could not be entered."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    from provision_min.local.network import NetworkError, ip

    try:
        return ip(*args, check=check)
    except NetworkError as exc:
        raise NetnsError(str(exc)) from None


def list_namespaces() -> list[str]:
    """Names of all named network namespaces (``ip netns list`` may append ``(id: N)``)."""
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def namespace_pids(name: str) -> list[int]:
    """PIDs of the live processes in namespace ``name`` (zombies are not listed: they hold no namespace)."""
    proc = _ip("netns", "pids", name, check=False)
    if proc.returncode != 0:
        return []
    me = os.getpid()
    return [pid for pid in (int(tok) for tok in proc.stdout.split() if tok.isdigit()) if pid != me]


def _signal_all(pids: Sequence[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def kill_namespace_processes(
    name: str, term_timeout: float = 5.0, reap: Callable[[], None] | None = None
) -> list[int]:
    """SIGTERM everything in ``name``, wait up to ``term_timeout``, SIGKILL the rest; return who needed KILL.

    ``reap`` is called while waiting so the caller can collect its own children (else they stay zombies,
    which is harmless for the namespace but leaks ``Popen`` objects).
    """
    termed: set[int] = set()
    deadline = time.monotonic() + term_timeout
    while True:
        if reap is not None:
            reap()
        left = namespace_pids(name)
        if not left:
            return []
        if time.monotonic() >= deadline:
            break
        # One TERM each, also to processes started while we wait (a supervisor restarting its child); a
        # second TERM could cut short a graceful shutdown that is under way.
        new = [pid for pid in left if pid not in termed]
        _signal_all(new, signal.SIGTERM)
        termed.update(new)
        time.sleep(0.05)
    killed: list[int] = []
    kill_deadline = time.monotonic() + 5.0
    while left and time.monotonic() < kill_deadline:
        _signal_all(left, signal.SIGKILL)
        killed.extend(pid for pid in left if pid not in killed)
        time.sleep(0.05)
        if reap is not None:
            reap()
        left = namespace_pids(name)
    if left:
        raise NetnsError(f"processes {left} in namespace {name} survived SIGKILL")
    return killed


def pid_alive(pid: int) -> bool:
    """Alive and not a zombie (orphans may stay zombies here until PID 1 reaps them)."""
    from provision_min.local.machine import alive

    return alive(pid)


def cleanup_stale() -> list[str]:
    """Delete ``ba-<pid>-<n>`` namespaces (and kill their processes) whose creating process is gone.

    Meant to run once per test session: a run that crashed (SIGKILL, OOM) could not tear down. Namespaces
    of live processes belong to concurrent runs and are left alone.
    """
    removed: list[str] = []
    for name in list_namespaces():
        match = _NAME_RE.fullmatch(name)
        if match is None:
            continue
        pid = int(match.group(1))
        if pid == os.getpid() or pid_alive(pid):
            continue
        kill_namespace_processes(name, term_timeout=2.0)
        _ip("netns", "del", name, check=False)
        removed.append(name)
    return removed


_libc: ctypes.CDLL | None = None


def enter_namespace(path: str | os.PathLike[str]) -> None:
    """Move the *calling thread* into the network namespace at ``path`` (a /run/netns file)."""
    global _libc
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns = getattr(os, "setns", None)  # Python >= 3.12
        if setns is not None:
            setns(fd, CLONE_NEWNET)
            return
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


@dataclasses.dataclass(frozen=True)
class HttpResponse:
    """What ``http_get`` saw; header names are lower case."""

    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    @property
    def cache_status(self) -> str | None:
        """nginx's ``X-Cache-Status`` (MISS, HIT, EXPIRED, STALE, ...)."""
        return self.header("x-cache-status")


def http_get(url: str, timeout: float = 5.0) -> HttpResponse:
    """A bare HTTP GET: no proxy environment, no redirects, any status returned (not raised)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None:
        raise ValueError(f"only http://host[:port]/path URLs: {url!r}")
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        return HttpResponse(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body)
    finally:
        conn.close()


def https_get(url: str, auth: tuple[str, str] | None = None, timeout: float = 5.0) -> HttpResponse:
    """A bare HTTPS GET that accepts any certificate (the tests check the certificate themselves via
    ``peer_certificate``), with optional HTTP basic auth."""
    import base64
    import ssl

    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https" or parts.hostname is None:
        raise ValueError(f"only https://host[:port]/path URLs: {url!r}")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=timeout, context=context)
    try:
        headers = {}
        if auth:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        conn.request("GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""), headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        peer = conn.sock.getpeercert(binary_form=True) if conn.sock else None
        headers_out = {k.lower(): v for k, v in resp.getheaders()}
        if peer:
            headers_out["x-test-peer-certificate"] = ssl.DER_cert_to_PEM_cert(peer)
        return HttpResponse(resp.status, headers_out, body)
    finally:
        conn.close()


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when a TCP connect to host:port succeeds (run it via ``node.call`` for the node's view)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (run via ``node.call`` for a port inside a node)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class TestNode:
    """A network namespace playing one cloud node; use as a context manager (or ``start()``/``close()``)."""

    __test__ = False  # not a test class, despite the name

    def __init__(self, *ips: str, term_timeout: float = 5.0, call_timeout: float = 120.0) -> None:
        self.ips: tuple[str, ...] = tuple(str(ipaddress.IPv4Address(ip)) for ip in ips)
        self.name = f"{NAME_PREFIX}{os.getpid()}-{next(_counter)}"
        self.term_timeout = term_timeout
        #: Upper bound for ``call()``; a callable still running then is left behind (daemon thread).
        self.call_timeout = call_timeout
        self._created = False
        self._closed = False
        self._children: list[subprocess.Popen[Any]] = []

    def __repr__(self) -> str:
        return f"TestNode({self.name}, ips={list(self.ips)})"

    @property
    def path(self) -> Path:
        return NETNS_DIR / self.name

    @property
    def ip(self) -> str:
        """The first (main) address of the node."""
        if not self.ips:
            raise ValueError(f"{self} has no address of its own")
        return self.ips[0]

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> TestNode:
        if self._created:
            return self
        if self._closed:
            raise NetnsError(f"{self} was closed")
        _ip("netns", "add", self.name)
        self._created = True
        _live_nodes.add(self)
        try:
            _ip("-n", self.name, "link", "set", "lo", "up")
            for ip in self.ips:
                _ip("-n", self.name, "addr", "add", f"{ip}/32", "dev", "lo")
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Kill every process in the node and delete the namespace; safe to call twice."""
        if self._closed or not self._created:
            self._closed = True
            return
        self._closed = True
        try:
            kill_namespace_processes(self.name, self.term_timeout, reap=self._reap)
        finally:
            self._reap(force=True)
            last: NetnsError | None = None
            for _ in range(3):
                try:
                    _ip("netns", "del", self.name)
                    last = None
                    break
                except NetnsError as exc:
                    if self.name not in list_namespaces():
                        last = None
                        break
                    last = exc
                    time.sleep(0.1)
            _live_nodes.discard(self)
            if last is not None:
                raise last

    def _reap(self, force: bool = False) -> None:
        """Collect exited children; with ``force``, also kill children that left the namespace."""
        for proc in list(self._children):
            if proc.poll() is None and force:
                with contextlib.suppress(OSError):
                    proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
            if proc.returncode is not None:
                self._children.remove(proc)

    def __enter__(self) -> TestNode:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- running things inside ------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if not self._created or self._closed:
            raise NetnsError(f"{self} is not running")

    def exec_argv(self, argv: Sequence[str | os.PathLike[str]]) -> list[str]:
        """``argv`` prefixed with ``ip netns exec NAME`` (for callers that spawn processes themselves)."""
        return ["ip", "netns", "exec", self.name, *(os.fspath(a) for a in argv)]

    @staticmethod
    def _env(kw: dict[str, Any]) -> None:
        # A proxy from the CI environment would send node-local requests out of the namespace (and fail).
        if "env" not in kw:
            env = {k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARS}
            kw["env"] = env

    def run(self, argv: Sequence[str | os.PathLike[str]], **kw: Any) -> subprocess.CompletedProcess[Any]:
        """``subprocess.run`` inside the node; default ``timeout`` 120 s and stdin from /dev/null."""
        self._check_open()
        kw.setdefault("timeout", 120)
        kw.setdefault("stdin", subprocess.DEVNULL)
        self._env(kw)
        return subprocess.run(self.exec_argv(argv), **kw)

    def popen(self, argv: Sequence[str | os.PathLike[str]], **kw: Any) -> subprocess.Popen[Any]:
        """``subprocess.Popen`` inside the node; the process is killed at teardown at the latest."""
        self._check_open()
        kw.setdefault("stdin", subprocess.DEVNULL)
        self._env(kw)
        proc: subprocess.Popen[Any] = subprocess.Popen(self.exec_argv(argv), **kw)
        self._children.append(proc)
        return proc

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` in a new thread inside the node; return its result or raise its error.

        Threads that ``fn`` starts stay inside the node (see the module docstring).
        """
        self._check_open()
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                enter_namespace(self.path)
                box["value"] = fn(*args, **kwargs)
            except BaseException as exc:
                box["error"] = exc

        thread = threading.Thread(target=target, name=f"netns-{self.name}", daemon=True)
        thread.start()
        thread.join(self.call_timeout)
        if thread.is_alive():
            what = getattr(fn, "__name__", repr(fn))
            raise TimeoutError(f"{what} still running in {self.name} after {self.call_timeout} s")
        if "error" in box:
            raise box["error"]
        value: T = box["value"]
        return value

    def pids(self) -> list[int]:
        """Live processes inside the node (``ip netns pids``)."""
        return namespace_pids(self.name)

    # -- conveniences ---------------------------------------------------------------------------------------
    def http_get(self, url: str, timeout: float = 5.0) -> HttpResponse:
        return self.call(http_get, url, timeout)

    def https_get(self, url: str, auth: tuple[str, str] | None = None, timeout: float = 5.0) -> HttpResponse:
        return self.call(https_get, url, auth, timeout)

    def port_open(self, host: str, port: int) -> bool:
        return self.call(port_open, host, port)

    def free_port(self, host: str = "127.0.0.1") -> int:
        return self.call(free_port, host)

    def wait_port(
        self, host: str, port: int, timeout: float = 10.0, proc: subprocess.Popen[Any] | None = None
    ) -> None:
        """Poll until host:port accepts inside the node; fail early when ``proc`` exits first."""
        wait_port(host, port, timeout=timeout, proc=proc, node=self)


def wait_port(
    host: str,
    port: int,
    *,
    timeout: float = 10.0,
    proc: subprocess.Popen[Any] | None = None,
    node: TestNode | None = None,
) -> None:
    """Poll until host:port accepts a connection (inside ``node`` when given), bounded by ``timeout``
    (``NotReached``, a ``TimeoutError``); ``RuntimeError`` as soon as ``proc`` exits first."""

    def probe() -> bool:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode} before {host}:{port} opened")
        return node.port_open(host, port) if node is not None else port_open(host, port)

    wait_for(f"{host}:{port} open", probe, timeout, interval=0.05)


_unavailable: list[str | None] = []


def netns_unavailable_reason() -> str | None:
    """Why TestNodes cannot work here (not root, no ``ip``, no namespaces), or None; probed once."""
    if _unavailable:
        return _unavailable[0]
    reason: str | None = None
    if os.geteuid() != 0:
        reason = "network namespaces need root"
    else:
        try:
            with TestNode() as probe:
                probe.run(["true"], check=True, timeout=10)
        except (OSError, NetnsError, subprocess.SubprocessError) as exc:
            reason = f"ip netns is unavailable: {exc}"
    _unavailable.append(reason)
    return reason


@atexit.register
def _close_leftovers() -> None:
    """Last resort (e.g. KeyboardInterrupt past the fixtures): no namespace outlives the process."""
    for node in list(_live_nodes):
        with contextlib.suppress(Exception):
            node.close()
