"""One authenticated ZooKeeper session with a deadline on every call.

kazoo ≥ 2.7 queues requests while the connection is SUSPENDED, so a plain synchronous call can hang for as
long as ZooKeeper is away. Every call here is asynchronous and awaited until a deadline (``call_timeout`` in
total), then fails as one :class:`ClusterUnavailable` line that never holds the secret. The state listener
only sets flags and wakes whoever waits; it makes no ZooKeeper call.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError, SequentialThreadingHandler
from kazoo.protocol.states import KazooState
from kazoo.retry import KazooRetry
from kazoo.security import ACL

from bootstrap_agent import logs
from bootstrap_agent.zk import acls
from bootstrap_agent.zk.errors import ClusterUnavailable, NotAuthorized
from bootstrap_agent.zk.paths import AUTH_USER, OPERATOR_USER, ClusterPaths


class _KazooLogBridge(logging.Handler):
    """kazoo's own log lines (WARNING and up) as ``zk_client`` events of the store's structured log.

    Without it they would reach stderr as plain text through logging's last-resort handler, in the middle of
    the JSON lines. A message repeating the previous one (``Connection refused`` on every reconnect attempt
    while ZooKeeper is down) is logged once.
    """

    def __init__(self, log: Any) -> None:
        super().__init__(logging.WARNING)
        self._log = log
        self._last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = logs.mask(record.getMessage())
            if message == self._last:
                return
            self._last = message
            report = self._log.error if record.levelno >= logging.ERROR else self._log.warning
            report("zk_client", message=message)
        except Exception:  # logging must never break the connection thread
            return


def _kazoo_logger(cluster: str, log: Any) -> logging.Logger:
    """A private logger for one kazoo client, outside logging's tree (nobody can raise it to DEBUG by
    configuration: at DEBUG kazoo logs every request, the Auth packet with the secret included)."""
    logger = logging.Logger(f"bootstrap_agent.kazoo.{cluster}", logging.WARNING)
    logger.propagate = False
    logger.addHandler(_KazooLogBridge(log))
    return logger


CONNECT_TIMEOUT = 2.0  # seconds for the TCP connect to one server (kazoo's own: the whole session timeout)


class CappedConnectHandler(SequentialThreadingHandler):  # type: ignore[misc]
    """kazoo's handler with a short TCP connect. kazoo gives each connect the whole session timeout, so while a
    powered-off master's address answers nothing (no reset), a reconnect waits that long on it before trying the
    servers left, which may serve again within seconds: a new leader elected by the ensemble found this node's
    client still connecting (a scaler's takeover 10 s late). A handshake on the cluster's network takes
    milliseconds; after ``connect_timeout`` the next server is tried."""

    def __init__(self, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        super().__init__()
        self.connect_timeout = connect_timeout

    def create_connection(self, *args: Any, **kwargs: Any) -> Any:
        timeout = kwargs.get("timeout")
        kwargs["timeout"] = self.connect_timeout if timeout is None else min(timeout, self.connect_timeout)
        return super().create_connection(*args, **kwargs)


class Session:
    """The kazoo client of one store, the condition everything of the store waits on, and the deadlines.

    ``on_state(state)`` is called from kazoo's connection thread after the flags are set; it must only wake
    or enqueue. Events registered in ``wakers`` are set on every state change and on ``stop()`` (lock
    contenders waiting for a predecessor re-check then).
    """

    def __init__(
        self,
        hosts: str,
        paths: ClusterPaths,
        secret: str,
        *,
        call_timeout: float,
        session_timeout: float,
        log: Any,
        reconnect_max_delay: float,
        on_state: Callable[[str], None],
        operator_secret: str | None = None,
        masters: Sequence[str] | None = None,
        operator_acl_id: str | None = None,
    ) -> None:
        if not secret or operator_secret == "":
            raise ValueError("the cluster secret must not be empty")
        self.hosts = hosts
        # the masters' addresses (ZooKeeper's `ip` scheme under masters/): the ensemble's unless given
        self.masters = tuple(masters or (host.rsplit(":", 1)[0] for host in hosts.split(",")))
        self.paths = paths
        self.call_timeout = call_timeout
        self.log = log
        logs.register_secrets(secret, operator_secret, operator_acl_id, source="zookeeper")
        self.node_id = acls.node_id(secret)
        self.acl: ACL = acls.legacy(self.node_id)[0]
        # The operator's digest id when we hold the operator credential (the operator's tools); a node learns
        # only *whether* the tree is split (ensure_tree: ZooKeeper masks ids to clients without ADMIN).
        self.operator_id: str | None = acls.operator_id(operator_secret) if operator_secret else None
        self.split = self.operator_id is not None
        # A master's user-data names the operator's id (not its password) so that the master creating a new
        # cluster's tree creates it already split (tree.seed_tree); it grants this session nothing.
        self.seed_operator_id = operator_acl_id
        auth = [("digest", f"{AUTH_USER}:{secret}")]
        if operator_secret:
            auth.append(("digest", f"{OPERATOR_USER}:{operator_secret}"))
        self.closing = threading.Event()
        self.connected = threading.Event()
        self.started = False
        self.cond = threading.Condition()  # never held across a ZooKeeper call
        self.wakers: set[threading.Event] = set()
        self._on_state_change = on_state
        self.client = KazooClient(
            hosts=hosts,
            timeout=session_timeout,
            handler=CappedConnectHandler(),
            auth_data=auth,
            default_acl=[self.acl],
            # Unlimited reconnects with a short maximum back-off: ZooKeeper being away is an outage to ride out,
            # never a reason to give up; `interrupt` lets stop() end a back-off sleep at once.
            connection_retry=KazooRetry(
                max_tries=-1, delay=0.1, backoff=2, max_jitter=0.4, max_delay=reconnect_max_delay,
                interrupt=self.closing.is_set,
            ),
            # Only kazoo internals use this; every call of ours has its own deadline.
            command_retry=KazooRetry(max_tries=3, delay=0.1, deadline=call_timeout, ignore_expire=False),
            logger=_kazoo_logger(paths.cluster, log),
        )
        self.client.add_listener(self._on_state)

    def member_acl(self, master_ip: str | None = None) -> list[ACL]:
        """The ACL of a znode this node creates for itself (``acls.member``)."""
        return acls.member(self.node_id, self.operator_id, split=self.split, master_ip=master_ip)

    def config_acl(self) -> list[ACL]:
        """The ACL of ``config`` when it is created: the operator's alone to write once the tree is split."""
        if self.operator_id is None:  # before the split; after it only the operator may create config
            return [self.acl]
        return acls.tree(self.paths, self.node_id, self.operator_id, self.masters)[self.paths.config]

    # --- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> None:
        self.started = True
        self.client.start_async()

    def stop(self) -> None:
        """Close the session (the server removes our ephemeral znodes at once) and wake every waiter."""
        self.closing.set()
        with self.cond:
            self.cond.notify_all()
        self.wake_all()
        try:
            self.client.stop()
            self.client.close()
        except Exception as exc:  # closing is best effort; the process is usually about to exit
            self.log.warning("zk_close_failed", error=f"{type(exc).__name__}: {exc}")
        self.connected.clear()

    def session_id(self) -> int | None:
        client_id = self.client.client_id
        return client_id[0] if client_id else None

    def wake_all(self) -> None:
        for waker in list(self.wakers):
            waker.set()

    def _on_state(self, state: str) -> None:
        """kazoo's connection thread: set flags, wake waiters, tell the owner; nothing else."""
        try:
            if state == KazooState.CONNECTED:
                self.connected.set()
            else:
                self.connected.clear()
            with self.cond:
                self.cond.notify_all()
            self.wake_all()
            self._on_state_change(str(state))
        except Exception:  # never raise into kazoo's connection thread
            return

    # --- deadlines ------------------------------------------------------------------------------------------
    def deadline(self) -> float:
        return time.monotonic() + self.call_timeout

    def ready(self, deadline: float, what: str) -> None:
        """Wait (until the deadline) for a connected session: requests are only queued while connected."""
        if self.closing.is_set():
            raise ClusterUnavailable(f"{what}: the ZooKeeper session is closed")
        if not self.started:
            raise ClusterUnavailable(f"{what}: the ZooKeeper session is not started")
        with self.cond:  # woken by every session state change and by stop()
            self.cond.wait_for(lambda: self.connected.is_set() or self.closing.is_set(),
                               max(0.0, deadline - time.monotonic()))
        if self.closing.is_set():
            raise ClusterUnavailable(f"{what}: the ZooKeeper session is closed")
        if self.connected.is_set():
            return
        raise ClusterUnavailable(f"{what}: no ZooKeeper session at {self.hosts} within {self.call_timeout:g} s")

    def wait(self, result: Any, deadline: float, what: str, expect: tuple[type[Exception], ...] = ()) -> Any:
        """The value of an async kazoo call by the deadline; ``expect``-ed errors pass, the rest is one error."""
        try:
            return result.get(timeout=max(0.0, deadline - time.monotonic()))
        except expect:
            raise
        except KazooTimeoutError:
            raise ClusterUnavailable(f"{what}: no answer from ZooKeeper within {self.call_timeout:g} s") from None
        except KazooException as exc:
            name = type(exc).__name__
            if name == "NoAuthError":
                raise NotAuthorized(
                    f"{what}: not authorized: this credential may not do that in {self.paths.base}"
                ) from None
            raise ClusterUnavailable(f"{what}: ZooKeeper {name}") from None

    def delete(self, paths: Iterable[str], deadline: float, what: str = "deregister") -> None:
        """Delete ``paths`` in one pipelined batch; already gone is fine."""
        targets = sorted(set(paths))
        if not targets:
            return
        self.ready(deadline, what)
        pending = [self.client.delete_async(path) for path in targets]
        for result in pending:
            with contextlib.suppress(NoNodeError):
                self.wait(result, deadline, what, expect=(NoNodeError,))
