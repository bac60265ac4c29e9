"""The cluster's persistent znodes and their ACL: created when missing, repaired when they drift.

A tree created without our ACL (by hand, or by an older tool) would be readable by anyone, so an ACL that is
not exactly ours is replaced and logged (``zk_acl_fixed``). Who repairs depends on the tree (``acls``): on a
cluster before the split every node does, as always; on a split tree only the operator credential may change an
ACL, so the operator's tools repair (``bootstrap-agent config migrate``, which also makes the split) and a node
only reports the drift (``zk_acl_drift``).

A new cluster starts split: its masters' user-data names the operator credential's digest id (never its
password), and the master that finds no tree (or one the node credential may still change) creates it with the
operator's ACLs itself (``seed_tree``), so from the start only the operator may write ``config``.
"""

from __future__ import annotations

import contextlib

from kazoo.exceptions import NodeExistsError, NoNodeError
from kazoo.security import ACL, OPEN_ACL_UNSAFE

from bootstrap_agent.zk import acls
from bootstrap_agent.zk.errors import NotAuthorized
from bootstrap_agent.zk.paths import OPERATOR_USER, ROOT
from bootstrap_agent.zk.session import Session


def _wanted(session: Session) -> dict[str, list[ACL]]:
    """The ACL each persistent znode should carry (a node of a split tree knows the operator's user only)."""
    paths = session.paths
    if not session.split:
        return {path: [session.acl] for path in (*paths.tree(), paths.config)}
    return acls.tree(paths, session.node_id, session.operator_id or f"{OPERATOR_USER}:x", session.masters)


def create_tree(session: Session, deadline: float) -> None:
    """Create ``/bootstrap-agent`` (open, so it can hold more than one cluster) and the cluster's znodes.

    Not by a node of a split tree: the operator made it, and ZooKeeper checks CREATE on the parent before it
    looks whether the child exists, so even creating an existing znode would be refused."""
    if session.split and session.operator_id is None:
        return
    session.ready(deadline, "ensure_tree")
    client, wanted = session.client, _wanted(session)
    # ZooKeeper answers one session's requests in order, so parents are created before their children.
    pending = [client.create_async(ROOT, b"", acl=OPEN_ACL_UNSAFE)]
    pending += [client.create_async(path, b"", acl=wanted[path]) for path in session.paths.tree()]
    for result in pending:
        with contextlib.suppress(NodeExistsError):
            session.wait(result, deadline, "ensure_tree", expect=(NodeExistsError,))


def ensure_tree(session: Session) -> None:
    """Idempotent: the tree exists, and every znode of it carries exactly its ACL (repaired by whoever may)."""
    deadline = session.deadline()
    session.ready(deadline, "ensure_tree")
    if session.operator_id is None:  # a node: learn whether the tree is split before creating anything
        found = _base_acl(session, deadline)
        if session.seed_operator_id and (found is None or acls.node_is_admin(found)):
            seed_tree(session, session.seed_operator_id, deadline)
            found = _base_acl(session, deadline)
        if found is not None:
            session.split = acls.is_split(found)
    create_tree(session, deadline)
    wanted = _wanted(session)
    node_only = session.split and session.operator_id is None
    session.ready(deadline, "ensure_tree")
    pending = [(path, session.client.get_acls_async(path)) for path in wanted]
    for path, result in pending:
        try:
            current, stat = session.wait(result, deadline, "ensure_tree", expect=(NoNodeError,))
        except NoNodeError:  # config: created by the first `config set`
            continue
        if node_only:
            if acls.masked(current) != acls.masked(wanted[path]):
                session.log.warning("zk_acl_drift", path=path, found=acls.describe(current),
                                    reason="only the operator credential may repair it: bootstrap-agent config migrate")
            continue
        if set(current) == set(wanted[path]):
            continue
        session.ready(deadline, "ensure_tree")
        session.wait(session.client.set_acls_async(path, wanted[path], stat.aversion), deadline, "ensure_tree")
        # A digest id is a hash of a password: name the scheme only.
        previous = [a.id.scheme if a.id.scheme == "digest" else f"{a.id.scheme}:{a.id.id}" for a in current]
        session.log.warning("zk_acl_fixed", path=path, previous=previous)


def _base_acl(session: Session, deadline: float) -> list[ACL] | None:
    """The cluster znode's ACL as this session sees it; ``None`` while there is no tree."""
    try:
        found, _ = session.wait(session.client.get_acls_async(session.paths.base), deadline, "ensure_tree",
                                expect=(NoNodeError,))
    except NoNodeError:
        return None
    return list(found)


def seed_tree(session: Session, operator: str, deadline: float) -> None:
    """A master with the operator's digest id (``operator_acl_id``) makes the tree split with the node
    credential alone: the parents are created with ``acls.scaffold`` (the node may create their children and
    then hand them over), the children with their final ACL, then every znode gets the ACL ``config migrate``
    sets, the cluster's znode last. Masters racing each other, or a run cut short and resumed, end the same way:
    whatever another master already finished is refused to us and skipped."""
    paths, client = session.paths, session.client
    final = acls.tree(paths, session.node_id, operator, session.masters)
    scaffolded = {paths.base, paths.locks, paths.scaler}
    session.ready(deadline, "seed_tree")
    pending = [client.create_async(ROOT, b"", acl=OPEN_ACL_UNSAFE)]
    pending += [client.create_async(path, b"", acl=acls.scaffold(session.node_id, operator) if path in scaffolded
                                    else final[path]) for path in paths.tree()]
    for result in pending:
        with contextlib.suppress(NodeExistsError, NotAuthorized):
            session.wait(result, deadline, "seed_tree", expect=(NodeExistsError,))
    order = [path for path in final if path != paths.base] + [paths.base]
    session.ready(deadline, "seed_tree")
    handed = [client.set_acls_async(path, final[path]) for path in order]
    for result in handed:
        with contextlib.suppress(NoNodeError, NotAuthorized):  # config: created by the operator's first set
            session.wait(result, deadline, "seed_tree", expect=(NoNodeError,))
    session.log.info("zk_tree_split", path=paths.base, by="operator_acl_id")
