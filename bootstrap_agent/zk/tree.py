"""The cluster's persistent znodes and their ACL: created when missing, repaired when they drift.

A tree created without our ACL (by hand, or by an older tool) would be readable by anyone, so an ACL that is
not exactly ours is replaced and logged (``zk_acl_fixed``).
"""

from __future__ import annotations

import contextlib

from kazoo.exceptions import NodeExistsError
from kazoo.security import OPEN_ACL_UNSAFE

from bootstrap_agent.zk.paths import ROOT
from bootstrap_agent.zk.session import Session


def create_tree(session: Session, deadline: float) -> None:
    """Create ``/bootstrap-agent`` (open, so it can hold more than one cluster) and the cluster's znodes."""
    session.ready(deadline, "ensure_tree")
    client = session.client
    # ZooKeeper answers one session's requests in order, so parents are created before their children.
    pending = [client.create_async(ROOT, b"", acl=OPEN_ACL_UNSAFE)]
    pending += [client.create_async(path, b"", acl=[session.acl]) for path in session.paths.tree()]
    for result in pending:
        with contextlib.suppress(NodeExistsError):
            session.wait(result, deadline, "ensure_tree", expect=(NodeExistsError,))


def ensure_tree(session: Session) -> None:
    """Idempotent: the tree exists, and every znode of it carries exactly our ACL."""
    deadline = session.deadline()
    create_tree(session, deadline)
    paths = session.paths.tree()
    session.ready(deadline, "ensure_tree")
    pending = [(path, session.client.get_acls_async(path)) for path in paths]
    for path, result in pending:
        acls, stat = session.wait(result, deadline, "ensure_tree")
        if set(acls) != {session.acl}:
            session.ready(deadline, "ensure_tree")
            session.wait(session.client.set_acls_async(path, [session.acl], stat.aversion), deadline, "ensure_tree")
            # A digest id is a hash of a password: name the scheme only.
            previous = [a.id.scheme if a.id.scheme == "digest" else f"{a.id.scheme}:{a.id.id}" for a in acls]
            session.log.warning("zk_acl_fixed", path=path, previous=previous)
