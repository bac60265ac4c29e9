"""This node's own member znodes: ``nodes/<uuid>``, and a master's ``masters/<ip>`` copy.

The registration is remembered before it is written: when ZooKeeper is away the write fails, the record is
marked dirty, and the store's worker writes it as soon as the session is connected; after a session loss it
is re-created the same way. Writes of our own znodes are serialised (callers and the worker).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError

from bootstrap_agent.member import Member
from bootstrap_agent.zk.errors import ClusterUnavailable
from bootstrap_agent.zk.session import Session
from bootstrap_agent.zk.tree import create_tree


@dataclass
class _Record:
    uuid: str
    master: bool
    member: Member
    data: bytes
    paths: tuple[str, ...]


class Registration:
    """Register, update and deregister this node; ``sync()`` is the worker's repair after a loss."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._lock = threading.Lock()
        self._record: _Record | None = None
        self._dirty = False  # guarded by session.cond

    @property
    def dirty(self) -> bool:
        """Whether the worker has a write to repeat (call with ``session.cond`` held)."""
        return self._dirty

    def register(self, uuid: str, member: Member, *, master: bool) -> None:
        """Create (or take over) this node's ephemeral znode(s) and remember them."""
        if member.uuid != uuid:
            raise ValueError(f"member uuid {member.uuid!r} is not the registered uuid {uuid!r}")
        if master and member.role != "master":
            raise ValueError("only a master registers under masters/")
        with self._lock:
            previous = self._record
            record = self._new_record(uuid, member, master)
            self._record = record
            try:
                deadline = self._session.deadline()
                if previous is not None:
                    self._session.delete(set(previous.paths) - set(record.paths), deadline)
                for path in record.paths:
                    self._put_ephemeral(path, record.data, deadline)
            except BaseException:
                self._mark_dirty()  # the worker writes it once the session is connected
                raise
            self._mark_clean(record)

    def update(self, member: Member) -> None:
        """Write ``member`` into the registered znode(s), only if it differs from what was written last."""
        with self._lock:
            previous = self._record
            if previous is None:
                raise ValueError("update() before register()")
            if member.uuid != previous.uuid:
                raise ValueError(f"member uuid {member.uuid!r} is not the registered uuid {previous.uuid!r}")
            record = self._new_record(previous.uuid, member, previous.master)
            with self._session.cond:
                dirty = self._dirty
            if record.data == previous.data and record.paths == previous.paths and not dirty:
                return
            self._record = record
            try:
                self._write(previous, record)
            except BaseException:
                self._mark_dirty()
                raise
            self._mark_clean(record)

    def deregister(self) -> None:
        """Delete this node's znodes at once (SIGTERM) and forget them; already gone is fine."""
        with self._lock:
            record, self._record = self._record, None
            with self._session.cond:
                self._dirty = False
            if record is not None:
                self._session.delete(record.paths, self._session.deadline())

    def sync(self) -> None:
        """Worker: make the remembered znodes exist, owned by this session (after LOST, or a failed write)."""
        with self._lock:
            record = self._record
            if record is None:
                with self._session.cond:
                    self._dirty = False
                return
            deadline = self._session.deadline()
            for path in record.paths:
                outcome = self._put_ephemeral(path, record.data, deadline)
                if outcome == "created":
                    self._session.log.info("zk_member_recreated", path=path)
                elif outcome == "updated":
                    self._session.log.info("zk_member_rewritten", path=path)
            self._mark_clean(record)

    def _write(self, previous: _Record, record: _Record) -> None:
        session = self._session
        deadline = session.deadline()
        session.delete(set(previous.paths) - set(record.paths), deadline)
        session.ready(deadline, "update")
        pending = [(path, session.client.set_async(path, record.data)) for path in record.paths]
        missing = []
        for path, result in pending:
            try:
                session.wait(result, deadline, "update", expect=(NoNodeError,))
            except NoNodeError:  # the session was lost and the worker has not re-created it yet
                missing.append(path)
        for path in missing:
            self._put_ephemeral(path, record.data, deadline)

    def _new_record(self, uuid: str, member: Member, master: bool) -> _Record:
        paths = self._session.paths
        znodes = (paths.node(uuid), paths.master(member.ip)) if master else (paths.node(uuid),)
        return _Record(uuid, master, member, member.to_json(), znodes)

    def _mark_dirty(self) -> None:
        with self._session.cond:
            self._dirty = True
            self._session.cond.notify_all()

    def _mark_clean(self, record: _Record) -> None:
        with self._session.cond:
            if self._record is record:
                self._dirty = False

    def _put_ephemeral(self, path: str, data: bytes, deadline: float) -> str:
        """Make ``path`` an ephemeral of THIS session holding ``data``; returns created/updated/unchanged.

        A znode left by an earlier session of ours (a restarted daemon, before the old session expired) is
        deleted and created again: otherwise it would vanish when that old session expires.
        """
        session, client = self._session, self._session.client
        for _ in range(4):
            session.ready(deadline, "register")
            owner = session.session_id()
            try:
                master_ip = path.rsplit("/", 1)[1] if path.startswith(session.paths.masters + "/") else None
                acl = session.member_acl(master_ip)
                create = client.create_async(path, data, acl=acl, ephemeral=True)
                session.wait(create, deadline, "register", expect=(NodeExistsError, NoNodeError))
                return "created"
            except NoNodeError:
                create_tree(session, deadline)
                continue
            except NodeExistsError:
                pass
            try:
                current, stat = session.wait(client.get_async(path), deadline, "register", expect=(NoNodeError,))
            except NoNodeError:
                continue
            if stat.ephemeralOwner == owner:
                if current == data:
                    return "unchanged"
                try:
                    setter = client.set_async(path, data, stat.version)
                    session.wait(setter, deadline, "register", expect=(NoNodeError, BadVersionError))
                    return "updated"
                except (NoNodeError, BadVersionError):
                    continue
            session.log.warning("zk_member_replaced", path=path, previous_owner=hex(stat.ephemeralOwner))
            try:
                deleter = client.delete_async(path, stat.version)
                session.wait(deleter, deadline, "register", expect=(NoNodeError, BadVersionError))
            except (NoNodeError, BadVersionError):
                pass
        raise ClusterUnavailable(f"register: {path} keeps changing under us")
