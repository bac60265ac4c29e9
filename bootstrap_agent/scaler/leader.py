"""Which master's scaler acts: the first contender under ``/bootstrap-agent/<cluster>/scaler/leader``.

The election is the restart lock's recipe (``zk/lock.py``: kazoo ``Lock``'s znodes, so ``kazoo
Lock(path).contenders()`` and ``provision-min status`` name the leader; every call with a deadline, where
kazoo's own ``Election`` would hang while the session is SUSPENDED). Leadership lasts as long as the contender
znode: a master that dies loses it when its session expires (ZooKeeper's session timeout), and the next
contender takes over. The znode's path is the *fencing token* of every state write (``state.StateStore``).

Only masters contend: ``scaler`` and ``scaler/leader`` let only the masters' addresses create below them
(``acls.tree``), agents may read who leads; the operator credential may repair them. The two znodes are part
of the cluster tree (``ClusterPaths.tree``), made by the master that seeds a new cluster and by the operator's
``config migrate`` on an older one.
"""

from __future__ import annotations

from kazoo.exceptions import NoNodeError

from bootstrap_agent.zk.errors import ClusterUnavailable
from bootstrap_agent.zk.lock import RestartLock
from bootstrap_agent.zk.session import Session
from bootstrap_agent.zk.tree import create_tree


class ScalerUnavailable(ClusterUnavailable):
    """The cluster tree has no scaler znodes (an older cluster): the operator adds them."""


class Leadership(RestartLock):
    """``acquire`` → the leader znode (the fencing token) or None within ``timeout``; ``release`` ends it."""

    def __init__(self, session: Session) -> None:
        super().__init__(session, session.paths.scaler_leader)

    def acquire(self, identifier: str, timeout: float) -> str | None:
        self._require_path()
        # Contender znodes of a release that failed, or of a create whose answer was lost, are deleted before
        # contending again (the restart lock leaves them to the store's worker, which does not know this lock):
        # left behind, our own stale znode would stay leader while nobody acts.
        self.cleanup()
        return self._acquire(identifier, timeout)

    def release(self, node: str) -> None:
        """Give up leading; a delete that cannot be made now is retried at the next ``acquire``."""
        session = self._session
        try:
            session.delete({node}, session.deadline(), "scaler_leader")
        except ClusterUnavailable as exc:
            session.log.warning("scaler_release_deferred", path=node, error=str(exc))
            self._defer_delete(node)

    def leader(self) -> str | None:
        """The identifier of the current leader (its contender znode's data), None when nobody leads."""
        session = self._session
        deadline = session.deadline()
        session.ready(deadline, "scaler_leader")
        try:
            children = session.wait(session.client.get_children_async(self.path), deadline, "scaler_leader",
                                    expect=(NoNodeError,))
        except NoNodeError:
            return None
        contenders = sorted((c for c in children if "__lock__" in c), key=lambda c: c[-10:])
        for name in contenders:
            try:
                data, _ = session.wait(session.client.get_async(f"{self.path}/{name}"), deadline, "scaler_leader",
                                       expect=(NoNodeError,))
            except NoNodeError:
                continue
            return bytes(data).decode(errors="replace")
        return None

    def _require_path(self) -> None:
        """The lock would otherwise retry creating a parent this credential may not create, forever."""
        session = self._session
        deadline = session.deadline()
        session.ready(deadline, "scaler_leader")
        if session.wait(session.client.exists_async(self.path), deadline, "scaler_leader") is not None:
            return
        create_tree(session, deadline)  # a tree before the split (or the operator's own session) makes it
        session.ready(deadline, "scaler_leader")
        if session.wait(session.client.exists_async(self.path), deadline, "scaler_leader") is None:
            raise ScalerUnavailable(f"scaler_leader: {self.path} does not exist; the operator adds it "
                                    "(bootstrap-agent config migrate, or provision-min up)")
