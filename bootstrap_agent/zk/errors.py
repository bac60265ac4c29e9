"""What the ZooKeeper edge raises: one outage error the daemon rides out, and the two config outcomes."""

from __future__ import annotations

from bootstrap_agent.errors import AgentError


class ClusterUnavailable(AgentError):
    """ZooKeeper did not answer in time, the session is gone, or the secret does not open the cluster's tree.

    The single error the daemon has to catch around any call of the store: it reports ``degraded`` and keeps
    going; the store's worker keeps trying by itself.
    """

    exit_code = 1


class NotAuthorized(ClusterUnavailable):
    """ZooKeeper refused the call for this credential (``NoAuth``): the node credential writing the config,
    changing an ACL or another master's znode. Not an outage; a command reports it as a refusal."""


class ConfigConflict(AgentError):
    """The config znode changed (or appeared, or vanished) since the version the caller read: nothing written.

    Not an outage: ZooKeeper answered, someone else wrote first. The caller reads again and decides."""

    exit_code = 1


class ConfigInvalid(ClusterUnavailable):
    """The config znode holds something that is not a JSON object.

    A subclass of :class:`ClusterUnavailable` on purpose: callers keep the overrides they had, exactly as when
    ZooKeeper is away, instead of falling back to ``{}`` and restarting services across the cluster.
    """
