"""The Alluxio 2.9 master stand-in's roles under the embedded journal: primary or standby, and what each listens on.

What the real master does (Alluxio v2.9.3, cited in ``bootstrap_agent/data/names/STARTUP-RULES.md``, rule A6):

* ``AlluxioMasterProcess.Factory.create`` builds the journal first: for the embedded journal a
  ``RaftJournalSystem``, whose constructor refuses a ``alluxio.master.embedded.journal.addresses`` list
  without this master ("The cluster addresses (...) must contain the local master address (...)").
* ``AlluxioMasterProcess.start()`` starts its services, then the journal (the Raft server on
  ``alluxio.master.embedded.journal.port``, 19200, on every master whatever its role), then waits for primacy.
* The RPC service (``RpcServerService``) and the web service (``PrimaryOnlyWebServerService``) start as a
  ``RejectingServer`` on their ports: it accepts every connection and closes it at once. Promotion replaces
  it with the gRPC / web server, demotion puts it back. With ``alluxio.standby.master.grpc.enabled`` /
  ``alluxio.standby.master.web.enabled`` (default ``false``) the gRPC / web server runs from the start.

So every master holds its RPC, web and journal ports; only the primary (or a standby with those switches)
answers on the first two. The stand-in keeps its sockets bound and switches what a connection gets.

Which master is primary is Raft's business; the stand-in has a model of it instead, good enough for tests
and **not Raft**: each master answers on its journal port with one line, ``PRIMARY`` or ``STANDBY``, and
once a second asks every other member of the list. Without a majority of the list answering (itself
included) it is a standby (a Raft leader without its quorum steps down). With a majority: if another
answering master says ``PRIMARY``, a standby stays standby and a primary steps down when that one comes
earlier in the list (two primaries after a partition: the earlier address wins); if none does, a primary
stays primary and otherwise the first answering address of the list becomes primary. A master that comes
back therefore finds the new primary and stays standby, as under Raft; unlike Raft, two masters may both
call themselves primary for up to a second.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import socketserver
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from standins.alluxio_rest import RestHandler
from standins.alluxio_start import StartRefused, journal_type
from standins.common import log_event, tcp_listener

JOURNAL_ADDRESSES_KEY = "alluxio.master.embedded.journal.addresses"
JOURNAL_PORT_KEY = "alluxio.master.embedded.journal.port"
DEFAULT_JOURNAL_PORT = 19200
STANDBY_WEB_KEY = "alluxio.standby.master.web.enabled"
STANDBY_GRPC_KEY = "alluxio.standby.master.grpc.enabled"
PRIMARY, STANDBY = "PRIMARY", "STANDBY"
ELECTION_INTERVAL = 1.0  # seconds between two rounds of the stand-in's election
PROBE_TIMEOUT = 0.5
RPC_HOLD = 10.0  # how long a served RPC connection waits for the client's bytes before it is closed
# An HTTP/2 server speaks first: its connection preface is a SETTINGS frame (RFC 9113, 3.4); empty here.
# It is what tells a served gRPC port from a RejectingServer, which closes without a byte.
H2_SETTINGS = bytes((0, 0, 0, 4, 0, 0, 0, 0, 0))

Member = tuple[str, int]


@dataclass
class MasterRole:
    """This process' role as the last election round decided it; read by the port handlers."""

    primary: bool = True  # a process without an embedded journal (1.8, a UFS journal) serves as ever
    standby_web: bool = False
    standby_grpc: bool = False

    def serves(self, purpose: str) -> bool:
        """Whether a connection to the ``rpc`` or ``web`` port gets a server rather than a RejectingServer."""
        if self.primary:
            return True
        return self.standby_web if purpose == "web" else self.standby_grpc


ROLE = MasterRole()


@dataclass(frozen=True)
class Journal:
    members: tuple[Member, ...]
    me: int  # this master's index in ``members``


# --- configuration ------------------------------------------------------------------------------------------


def _is_local(host: str) -> bool:
    """Whether ``host`` is an address of this machine (or its network namespace): one it can bind."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
        return True
    except OSError:
        return False


def _java_address(host: str, port: int) -> str:
    """``InetSocketAddress.toString()`` of a resolved address on Java 11: ``name/ip:port``, ``/ip:port``."""
    try:
        ipaddress.ip_address(host)
        return f"/{host}:{port}"
    except ValueError:
        pass
    try:
        return f"{host}/{socket.gethostbyname(host)}:{port}"
    except OSError:
        return f"{host}:{port}"


def embedded_journal(version: str, properties: Mapping[str, str]) -> Journal | None:
    """The members of the master's Raft group and which one this master is; ``None`` without one (1.8, or
    another ``alluxio.master.journal.type``).

    As ``RaftJournalSystem``: the local address is ``alluxio.master.hostname`` (else this machine's name) with
    the journal port; the list defaults to that one address; a list that contains neither it nor an address
    of this machine is refused with the real message.
    """
    if version == "1.8" or journal_type(version, properties) != "EMBEDDED":
        return None
    port_text = properties.get(JOURNAL_PORT_KEY, str(DEFAULT_JOURNAL_PORT)).strip()
    if not port_text.isdigit() or int(port_text) > 65535:
        raise StartRefused(f"{JOURNAL_PORT_KEY} must be a port number (0-65535), got {port_text!r}")
    local = (properties.get("alluxio.master.hostname", "").strip() or socket.gethostname(), int(port_text))
    listed = properties.get(JOURNAL_ADDRESSES_KEY, "").strip()
    members: list[Member] = [local]
    if listed:  # its shape was checked with the other values (alluxio.validate)
        members = [(host, int(port)) for host, port in (item.rsplit(":", 1) for item in listed.split(","))]
    if local in members:
        return Journal(tuple(members), members.index(local))
    mine = [i for i, (host, port) in enumerate(members) if port == local[1] and _is_local(host)]
    if not mine:
        shown = ", ".join(f"{host}:{port}" for host, port in members)  # unresolved: InetSocketAddress.toString
        raise StartRefused("Failed to create master process: java.lang.IllegalStateException: The cluster "
                           f"addresses ([{shown}]) must contain the local master address "
                           f"({_java_address(*local)})")
    return Journal(tuple(members), mine[0])


# --- the election (the stand-in's model; see the module's docstring) ----------------------------------------


def elect(me: int, answers: Sequence[str | None], primary_now: bool) -> bool:
    """Whether this master is primary for the next round. ``answers[i]``: what member ``i`` said on its
    journal port (``None``: no answer); ``answers[me]`` is not read."""
    up = [i for i, answer in enumerate(answers) if i == me or answer is not None]
    if len(up) <= len(answers) // 2:
        return False
    primaries = [i for i, answer in enumerate(answers) if i != me and answer == PRIMARY]
    if primaries:
        return primary_now and me < min(primaries)
    return primary_now or up[0] == me


def ask(member: Member, timeout: float = PROBE_TIMEOUT) -> str | None:
    """What a member says on its journal port: ``PRIMARY``, ``STANDBY``; ``None`` when it does not answer."""
    try:
        with socket.create_connection(member, timeout=timeout) as connection:
            words = connection.recv(16).decode("ascii", "replace").strip()
    except OSError:
        return None
    return words if words in (PRIMARY, STANDBY) else STANDBY


def _round(journal: Journal) -> None:
    answers = [None if i == journal.me else ask(member) for i, member in enumerate(journal.members)]
    primary = elect(journal.me, answers, ROLE.primary)
    if primary != ROLE.primary:
        ROLE.primary = primary
        log_event("alluxio_master_role", role=PRIMARY if primary else STANDBY,
                  answering=[f"{h}:{p}" for (h, p), a in zip(journal.members, answers, strict=True) if a])


def _elect_forever(journal: Journal, stop: threading.Event) -> None:
    while not stop.is_set():
        _round(journal)
        stop.wait(ELECTION_INTERVAL)


# --- what a connection gets ---------------------------------------------------------------------------------


class WebHandler(RestHandler):
    """The web server while this master serves web, else a RejectingServer's accept-and-close."""

    def handle(self) -> None:
        if ROLE.serves("web"):
            super().handle()


class RpcHandler(socketserver.BaseRequestHandler):
    """A gRPC port that speaks first (its HTTP/2 SETTINGS) while served, else accept-and-close."""

    def handle(self) -> None:
        if not ROLE.serves("rpc"):
            return
        connection: socket.socket = self.request
        connection.settimeout(RPC_HOLD)
        with contextlib.suppress(OSError):
            connection.sendall(H2_SETTINGS)
            while connection.recv(4096):
                pass


class JournalHandler(socketserver.BaseRequestHandler):
    """The stand-in's journal port: one line with this master's role (the real one speaks Ratis' gRPC)."""

    def handle(self) -> None:
        with contextlib.suppress(OSError):
            self.request.sendall(f"{PRIMARY if ROLE.primary else STANDBY}\n".encode("ascii"))


def _switch(properties: Mapping[str, str], key: str) -> bool:
    return properties.get(key, "false").strip().lower() == "true"


def start_roles(label: str, host: str, journal: Journal, properties: Mapping[str, str],
                rpc: socketserver.TCPServer, web: socketserver.TCPServer,
                stop: threading.Event) -> socketserver.TCPServer:
    """Bind the journal port, put the RPC and web ports under the role, start the election; the journal's
    server, to be served with the others."""
    ROLE.standby_web = _switch(properties, STANDBY_WEB_KEY)
    ROLE.standby_grpc = _switch(properties, STANDBY_GRPC_KEY)
    ROLE.primary = elect(journal.me, [None] * len(journal.members), False)  # a group of one: primary at once
    rpc.RequestHandlerClass = RpcHandler
    web.RequestHandlerClass = WebHandler
    server = tcp_listener(label, host, journal.members[journal.me][1])
    server.RequestHandlerClass = JournalHandler
    if len(journal.members) > 1:  # each change of role is logged (event alluxio_master_role)
        threading.Thread(target=_elect_forever, args=(journal, stop), daemon=True, name="election").start()
    return server
