"""The cluster-wide restart lock, with a deadline on every step.

Same znodes as kazoo's ``Lock`` (``<uuid4 hex>__lock__<seq>`` holding the holder's identifier), so kazoo's
``Lock(...).contenders()`` and a kazoo ``Lock`` in an operator tool interoperate. Written here because
kazoo's recipe makes untimed calls (it hangs while SUSPENDED) and releases with an untimed retry. The lock is
held as long as the session lives: a session loss releases it for the others. Contender znodes whose create
answer was lost, and releases that timed out, are left to the store's worker (``cleanup``).
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator
from typing import Any, cast

from kazoo.exceptions import NoNodeError

from bootstrap_agent.zk.errors import ClusterUnavailable
from bootstrap_agent.zk.session import Session
from bootstrap_agent.zk.tree import create_tree

_MARK = "__lock__"  # kazoo's Lock node names: <uuid4 hex>__lock__<10-digit sequence>
_NODE = re.compile(r"__lock__(-?\d{10})$")


def _sequence(name: str) -> str:
    match = _NODE.search(name)
    return match.group(1) if match else ""


def _waker(event: threading.Event) -> Callable[[Any], None]:
    """A watch callback that only wakes a waiting contender (any event, NONE included: re-check)."""

    def wake(_watched: Any) -> None:
        event.set()

    return wake


class RestartLock:
    """``hold(identifier, timeout)`` as a ``with``; the fields below are guarded by ``session.cond``."""

    def __init__(self, session: Session, path: str) -> None:
        self._session = session
        self.path = path
        self._prefixes: set[str] = set()  # contender nodes whose creation may or may not have happened
        self._deletes: set[str] = set()  # contender nodes to delete (a release that timed out)

    @contextlib.contextmanager
    def hold(self, identifier: str, timeout: float) -> Iterator[bool]:
        """Yields True when acquired within ``timeout`` seconds, False otherwise; released on exit."""
        node = self._acquire(identifier, timeout)
        try:
            yield node is not None
        finally:
            if node is not None:
                self._release(node)

    def _acquire(self, identifier: str, timeout: float) -> str | None:
        session, client = self._session, self._session.client
        prefix = uuidlib.uuid4().hex + _MARK
        end = time.monotonic() + timeout
        node: str | None = None
        try:
            while True:
                deadline = session.deadline()
                session.ready(deadline, "restart_lock")
                if node is None:
                    try:
                        create = client.create_async(f"{self.path}/{prefix}", identifier.encode(),
                                                     acl=session.member_acl(), ephemeral=True, sequence=True)
                        node = cast(str, session.wait(create, deadline, "restart_lock", expect=(NoNodeError,)))
                    except NoNodeError:
                        create_tree(session, deadline)
                        continue
                children = session.wait(client.get_children_async(self.path), deadline, "restart_lock")
                name = node.rsplit("/", 1)[1]
                if name not in children:  # our session was lost meanwhile: contend again
                    node = None
                    continue
                contenders = sorted((c for c in children if _NODE.search(c)), key=_sequence)
                position = contenders.index(name)
                if position == 0:
                    return node
                if time.monotonic() >= end:
                    self._give_up(node)
                    return None
                self._wait_for(f"{self.path}/{contenders[position - 1]}", deadline, end)
                if session.closing.is_set():
                    raise ClusterUnavailable("restart_lock: the store is stopping")
        except BaseException:
            if node is not None:
                self._give_up(node)
            else:  # the create may have happened without us seeing the answer: the worker looks for it
                with session.cond:
                    self._prefixes.add(prefix)
                    session.cond.notify_all()
            raise

    def _wait_for(self, predecessor: str, deadline: float, end: float) -> None:
        """Until the predecessor goes (its watch), the session changes, the store stops, or ``end``."""
        session = self._session
        woken = threading.Event()
        with session.cond:
            session.wakers.add(woken)
        try:
            watched = session.client.exists_async(predecessor, watch=_waker(woken))
            if session.wait(watched, deadline, "restart_lock") is None:
                return
            woken.wait(max(0.0, end - time.monotonic()))
        finally:
            with session.cond:
                session.wakers.discard(woken)

    def _give_up(self, node: str) -> None:
        try:
            self._session.delete({node}, self._session.deadline(), "restart_lock")
        except ClusterUnavailable:
            self._defer_delete(node)

    def _release(self, node: str) -> None:
        session = self._session
        deadline = session.deadline()
        try:
            session.ready(deadline, "restart_lock")
            session.wait(session.client.delete_async(node), deadline, "restart_lock", expect=(NoNodeError,))
        except NoNodeError:
            session.log.warning("restart_lock_lost", path=node, reason="the session ended while the lock was held")
        except ClusterUnavailable as exc:
            session.log.warning("restart_lock_release_deferred", path=node, error=str(exc))
            self._defer_delete(node)

    def _defer_delete(self, node: str) -> None:
        with self._session.cond:
            self._deletes.add(node)
            self._session.cond.notify_all()

    # --- the worker's side ----------------------------------------------------------------------------------
    def pending(self) -> bool:
        """Whether the worker has contender nodes to clean up (call with ``session.cond`` held)."""
        return bool(self._prefixes or self._deletes)

    def cleanup(self) -> None:
        """Worker: delete contender nodes of timed-out releases, and of creates whose answer was lost."""
        session = self._session
        with session.cond:
            prefixes, deletes = set(self._prefixes), set(self._deletes)
        if not (prefixes or deletes):
            return
        deadline = session.deadline()
        targets = set(deletes)
        if prefixes:
            session.ready(deadline, "restart_lock")
            children = session.wait(session.client.get_children_async(self.path), deadline, "restart_lock",
                                    expect=(NoNodeError,))
            targets |= {f"{self.path}/{c}" for c in children if c.startswith(tuple(prefixes))}
        session.delete(targets, deadline, "restart_lock")
        with session.cond:
            self._prefixes -= prefixes
            self._deletes -= deletes
