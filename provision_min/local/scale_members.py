"""``scale`` on the local cloud: the agents' members (their ``load`` and ``drain``) straight from the cluster's
ZooKeeper, as ``provision_min.scale`` reads them through the masters' status document on OTC.

One ZooKeeper session serves every read of a ``scale`` (``scale.run_scale`` reads the members to choose the
victims and again at every poll of the wait); ``None`` from the view (ZooKeeper not answering right now) is a
``ProvisionError``, which the choice turns into a warning and the wait into one more poll.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from provision_min.errors import ProvisionError
from provision_min.local.layout import CloudState
from provision_min.local.readiness import cluster_view
from provision_min.scale import Members

CONNECT_GRACE = 10.0  # seconds a read waits for the session ``cluster_view`` has just started


def member_dict(member: Any) -> dict[str, Any]:
    """A member as the status document lists it (``load`` and ``drain`` as plain objects)."""
    if dataclasses.is_dataclass(member) and not isinstance(member, type):
        return dataclasses.asdict(member)
    return dict(member) if isinstance(member, Mapping) else {}


@contextlib.contextmanager
def local_members(state: CloudState, role: str | None = "agent") -> Iterator[Members]:
    """``Members`` of the local cluster (agents only unless ``role`` is None) while the block runs."""
    with cluster_view(state) as view:

        def read() -> Sequence[Mapping[str, Any]]:
            members = view()
            deadline = time.monotonic() + CONNECT_GRACE
            while members is None and time.monotonic() < deadline:  # a session just started: let it connect
                time.sleep(0.2)
                members = view()
            if members is None:
                raise ProvisionError(f"the ZooKeeper of cluster {state.cluster} does not answer")
            found = [member_dict(m) for m in members.values()]
            return [m for m in found if role is None or m.get("role") == role]

        yield read
