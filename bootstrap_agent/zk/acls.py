"""Who may do what in a cluster's tree: the node credential and the operator credential.

A cluster created before the split has one credential, the user-data's ``secret``, with every permission on
every znode (``legacy``). After the split (a new cluster's first master, whose user-data names the operator's
digest id; ``provision-min`` on the local cloud; ``bootstrap-agent config migrate`` on an existing cluster)
the same secret is the *node* credential and a second one, kept only in the operator's state file, is the
*operator* credential:

=====================  ==========================  ==================
znode                  node (``bootstrap-agent``)  operator
=====================  ==========================  ==================
``<cluster>``          READ                        ALL
``nodes``              CREATE, READ, DELETE        ALL
``masters``            READ; CREATE, DELETE only   ALL
                       from a master's address
``locks``              READ                        ALL
``locks/restart``      CREATE, READ, DELETE        ALL
``config``             READ                        ALL
``scaler``, ``scaler/  READ; CREATE, DELETE only   ALL
leader``               from a master's address
``scaler/state``       READ; WRITE only from a     ALL
                       master's address
``nodes/<uuid>``       READ, WRITE                 DELETE (the parent's)
``masters/<ip>``       READ; WRITE only from <ip>  DELETE (the parent's)
=====================  ==========================  ==================

ZooKeeper checks CREATE and DELETE on the parent and gives a child the ACL named at its create; without ADMIN
nobody but the operator can change an ACL. ``masters/<ip>`` adds ZooKeeper's ``ip`` scheme, so only a client
connecting from that master's address may write it, and only clients from the masters' addresses may create or
delete under ``masters``. What one shared node credential cannot stop: any node may delete (or, while absent,
create) and write another node's ``nodes/<uuid>``, and a master another master's ``masters/<ip>`` (delete, or
create while absent), because DELETE and CREATE are the parent's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from kazoo.security import ACL, Id, Permissions, make_acl, make_digest_acl_credential

from bootstrap_agent.zk.paths import AUTH_USER, OPERATOR_USER, ClusterPaths

NODE_PARENT = Permissions.CREATE | Permissions.READ | Permissions.DELETE


def digest_id(user: str, secret: str) -> str:
    """The id ZooKeeper keeps for ``user:secret`` (``user:base64(sha1)``): a hash, safe to compare and log."""
    return str(make_digest_acl_credential(user, secret))


def node_id(secret: str) -> str:
    return digest_id(AUTH_USER, secret)


def operator_id(secret: str) -> str:
    return digest_id(OPERATOR_USER, secret)


def _digest(ident: str, perms: int) -> ACL:
    return ACL(perms, Id("digest", ident))


def legacy(node: str) -> list[ACL]:
    """Before the split: the one credential may do everything everywhere."""
    return [_digest(node, Permissions.ALL)]


def tree(paths: ClusterPaths, node: str, operator: str, masters: Sequence[str]) -> dict[str, list[ACL]]:
    """The split ACL of every persistent znode (``config`` included), by path. Under ``masters`` only clients
    connecting from a master's address (the ensemble's) may create or delete."""
    owner = _digest(operator, Permissions.ALL)
    read = [_digest(node, Permissions.READ), owner]
    parent = [_digest(node, NODE_PARENT), owner]
    from_masters = [ACL(NODE_PARENT, Id("ip", ip)) for ip in sorted(set(masters))]
    return {paths.base: read, paths.nodes: parent, paths.masters: [*read, *from_masters], paths.locks: read,
            paths.restart_lock: parent, paths.config: read, paths.scaler: [*read, *from_masters],
            paths.scaler_leader: [*read, *from_masters]}


def scaler_state(node: str, operator: str | None, masters: Sequence[str], *, split: bool) -> list[ACL]:
    """The scaler's decision state: every node may read it (``status``, the dashboards), only a master's
    address may write it, and the operator may repair it."""
    if not split:
        return legacy(node)
    owner = [_digest(operator, Permissions.ALL)] if operator else []
    writers = [ACL(Permissions.READ | Permissions.WRITE, Id("ip", ip)) for ip in sorted(set(masters))]
    return [_digest(node, Permissions.READ), *writers, *owner]


def is_split(found: Iterable[ACL]) -> bool:
    """Whether an ACL names the operator credential (a split tree names it on every persistent znode)."""
    return any(acl.id.scheme == "digest" and acl.id.id.startswith(f"{OPERATOR_USER}:") for acl in found)


def scaffold(node: str, operator: str) -> list[ACL]:
    """A parent's ACL while a master creates a split tree: the node credential needs CREATE to make the
    children and ADMIN to hand the parent over to the operator afterwards (``tree.seed_tree``)."""
    return [_digest(node, Permissions.ALL), _digest(operator, Permissions.ALL)]


def node_is_admin(found: Iterable[ACL]) -> bool:
    """Whether the node credential may still change this ACL: a tree before the split, or one a master has not
    finished splitting (a split tree never grants the node ADMIN)."""
    return any(a.id.scheme == "digest" and a.id.id.startswith(f"{AUTH_USER}:") and a.perms & Permissions.ADMIN
               for a in found)


def masked(found: Iterable[ACL]) -> set[tuple[str, str, int]]:
    """An ACL as a client without ADMIN sees it: ZooKeeper (≥ 3.4.7, ZOOKEEPER-1392) shows a digest id as
    ``user:x`` to anyone who may not change the ACL, so a node compares users and permissions only."""
    return {(a.id.scheme, a.id.id.split(":", 1)[0] if a.id.scheme == "digest" else a.id.id, a.perms) for a in found}


def member(node: str, operator: str | None, *, split: bool, master_ip: str | None = None) -> list[ACL]:
    """A member znode or lock contender the node creates: legacy before the split; after it the node may read
    and write its own data (a master's copy only from its own address) and nobody may change the ACL but the
    operator, named when this session knows its id (a node does not: see ``masked``)."""
    if not split:
        return legacy(node)
    owner = [_digest(operator, Permissions.ALL)] if operator else []
    if master_ip is None:
        return [_digest(node, Permissions.READ | Permissions.WRITE), *owner]
    return [_digest(node, Permissions.READ), make_acl("ip", master_ip, read=True, write=True), *owner]


def describe(acls: Iterable[ACL]) -> list[str]:
    """An ACL for a log line: digest ids are hashes of passwords, so only the user name is shown."""
    return [f"digest:{a.id.id.split(':', 1)[0]}:{a.perms}" if a.id.scheme == "digest" else
            f"{a.id.scheme}:{a.id.id}:{a.perms}" for a in acls]
