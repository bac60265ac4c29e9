"""What ``up`` replaces when the cluster file changed under a running cluster, in which order and how many at a
time. Pure: what exists and what the cluster file wants in, a ``Rollout`` out; no I/O.

A node is made from an image, a flavor and its user-data. Before this module ``up`` only created what was
missing, so a new ``image_id``, flavor or user-data setting changed nothing on a running cluster. Now:

* **Agents** (the AS group): when the group's configuration differs from the wanted one, ``up`` makes a new AS
  configuration (``<cluster>-agents-<digest8>``), switches the group to it, and replaces every instance still
  made from an older configuration, a batch at a time, each through the graceful path (REMOVE → drain → gone)
  while the group launches its successors from the new configuration. Capacity never drops below
  ``agents.min``: a batch is at most ``desired - agents.min`` agents; when that is 0 the group first grows by
  one (``surge``, within ``agents.max``) and shrinks back at the end. The least loaded go first.
* **Masters** (plain ECS with fixed addresses): one at a time, and only while the others keep quorum
  (ZooKeeper, the Mesos replicated log, the Alluxio embedded journal all need a majority): the old server is
  deleted and a new one created with the same name and address — the same ZooKeeper id (its position in
  ``masters``), an empty data folder, journal and replica that catch up from the others (docs/node-agent.md,
  "Replacing one master of three") — and ``up`` waits until it is ready before the next. The one holding the
  public address goes last. A single master cannot keep a quorum while it is replaced: that is refused.

What each master was made from is read from its ECS (``image.id``, ``flavor.id``) and from the digest of its
user-data that ``up`` stores in the server's metadata (``user_data_sha256``); a master made before that
carries none and is not replaced for its user-data (it cannot be compared).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from provision_min import userdata
from provision_min.victims import Candidate, cost, staying

DIGEST_KEY = "user_data_sha256"  # the master server's metadata key holding its user-data's digest
DEFAULT_BATCH_SHARE = 4  # a quarter of the agents at a time by default (at least one)


def digest(document: Mapping[str, Any]) -> str:
    """SHA-256 of the exact bytes a node gets (``userdata.encode_json``): high-entropy secrets inside, so the
    digest reveals nothing of them."""
    return hashlib.sha256(userdata.encode_json(document)).hexdigest()


def configuration_name(cluster: str, document: Mapping[str, Any], image: str, flavor: str) -> str:
    """``<cluster>-agents-<8 hex>``: a new name for every different configuration (OTC cannot update one)."""
    key = hashlib.sha256(f"{digest(document)} {image} {flavor}".encode()).hexdigest()[:8]
    return f"{cluster}-agents-{key}"


@dataclass(frozen=True)
class Spec:
    """What a node is made from; ``document`` (agents: the configuration's decoded user-data) or ``digest``
    (masters: from the server's metadata) may be unknown (None)."""

    image: str
    flavor: str
    document: Mapping[str, Any] | None = None
    digest: str | None = None

    def user_data_digest(self) -> str | None:
        return digest(self.document) if self.document is not None else self.digest


def changes(have: Spec, want: Spec) -> tuple[str, ...]:
    """What differs, one phrase each, naming settings but never values of user-data (they hold secrets). What
    the cloud did not say (an empty image or flavor) is unknown, never a difference: replacing a master on a
    guess would cost a quorum for nothing."""
    found = []
    if have.image and have.image != want.image:
        found.append(f"image_id {have.image} -> {want.image}")
    if have.flavor and have.flavor != want.flavor:
        found.append(f"flavor {have.flavor} -> {want.flavor}")
    if have.document is not None and want.document is not None:
        keys = sorted(k for k in set(have.document) | set(want.document)
                      if have.document.get(k) != want.document.get(k))
        if keys:
            found.append("user-data: " + ", ".join(keys))
    elif have.digest is not None and have.digest != want.user_data_digest():
        found.append("user-data")
    return tuple(found)


@dataclass(frozen=True)
class AgentRollout:
    changes: tuple[str, ...]  # empty: the configuration stays; instances of older ones are still replaced
    replace: tuple[str, ...]  # instance ids, in order (least loaded first)
    batch: int
    surge: int  # extra agents the group runs during the rollout so that none drops capacity below min
    blocked: str | None = None
    # the agents being replaced were made without the ``lifecycle`` section (before the hook): they never poll
    # it, so each is let go at once after its REMOVE instead of holding a batch for the hook's whole timeout
    undrainable: bool = False

    def batches(self) -> list[tuple[str, ...]]:
        return [self.replace[i:i + self.batch] for i in range(0, len(self.replace), self.batch)]


@dataclass(frozen=True)
class MasterRollout:
    order: tuple[tuple[str, tuple[str, ...]], ...]  # (name, its changes), one at a time in this order
    blocked: str | None = None


@dataclass(frozen=True)
class Rollout:
    agents: AgentRollout | None
    masters: MasterRollout | None

    @property
    def empty(self) -> bool:
        return not ((self.agents and (self.agents.replace or self.agents.changes))
                    or (self.masters and self.masters.order))

    def blocked(self) -> list[str]:
        """What differs but will not be replaced, and why (``up`` warns, ``plan`` shows it)."""
        found = []
        if self.agents is not None and self.agents.blocked:
            found.append(f"agents not replaced: {self.agents.blocked}")
        if self.masters is not None and self.masters.blocked:
            found.append(f"masters not replaced: {self.masters.blocked}")
        return found

    def lines(self, names: Mapping[str, str] | None = None) -> list[str]:
        """For ``plan``: what would be replaced, in order, and why; ``names`` maps instance ids to names."""
        names = names or {}
        out = []
        if self.agents is not None:
            a = self.agents
            if a.changes:
                out.append("new AS configuration (" + "; ".join(a.changes) + ") and the group switched to it")
            if a.blocked:
                out.append(f"agents NOT replaced: {a.blocked}")
            elif a.replace:
                how = f"{a.batch} at a time" + (f", the group {a.surge} larger meanwhile" if a.surge else "")
                drained = ("made before the lifecycle hook, they cannot drain: each is let go at once" if a.undrainable
                           else "each drained first")
                out.append(f"replace {len(a.replace)} agent(s), {how}, {drained}:")
                for number, batch in enumerate(a.batches(), 1):
                    out.append(f"  batch {number}: " + ", ".join(names.get(i, i) for i in batch))
        if self.masters is not None:
            m = self.masters
            if m.blocked:
                out.append(f"masters NOT replaced: {m.blocked}")
            for name, why in m.order:
                out.append(f"replace master {name} ({'; '.join(why)}), then wait until it is ready")
        return out


def plan_agents(have: Spec | None, want: Spec, current_config: str | None, instances: Sequence[Candidate],
                desired: int, minimum: int, maximum: int, batch: int | None = None) -> AgentRollout:
    """The agents' rollout. ``have`` is the group's configuration (None: no group yet, nothing to replace);
    an instance is replaced when the configuration changes or it was made from another one than the group's."""
    if have is None:
        return AgentRollout((), (), 1, 0)
    what = changes(have, want)
    pool = staying(instances)
    old = [c for c in pool if what or c.configuration_id != current_config]
    replace = tuple(c.instance_id for c in sorted(old, key=cost))
    surge = 0
    room = desired - minimum
    if room < 1:
        if desired + 1 > maximum:
            blocked = (f"agents.min {minimum} = desired {desired} = max {maximum}: no agent can leave without going "
                       "below agents.min; raise agents.max by one (or lower agents.min)") if replace else None
            return AgentRollout(what, replace, 1, 0, blocked)
        surge, room = 1, room + 1
    size = batch if batch is not None else max(1, desired // DEFAULT_BATCH_SHARE)
    return AgentRollout(what, replace, max(1, min(size, room)), surge if replace else 0)


def plan_masters(have: Mapping[str, Spec], want: Spec, order: Sequence[str]) -> MasterRollout:
    """Masters whose image, flavor or user-data changed, one at a time, the last of ``order`` (the one with the
    public address: ``order`` is the cluster's master names) last; refused for a single master."""
    changed = [(name, changes(have[name], want)) for name in reversed(order) if name in have]
    changed = [(name, why) for name, why in changed if why]
    if not changed:
        return MasterRollout(())
    if len(order) < 3:
        return MasterRollout((), "a single master cannot be replaced while the cluster keeps working (ZooKeeper, the "
                                 "Mesos log and the Alluxio journal need the others' quorum): replace it with "
                                 f"down and up, or run 3 masters ({', '.join(n for n, _ in changed)} differ: "
                                 f"{'; '.join(changed[0][1])})")
    return MasterRollout(tuple(changed))


def candidate(instance: Mapping[str, Any], member: Mapping[str, Any] | None = None) -> Candidate:
    """An instance of the group as the rollout sees it (with the configuration it was made from)."""
    return Candidate(str(instance.get("instance_id") or ""), str(instance.get("instance_name") or ""),
                     str(instance.get("life_cycle_state") or ""), str(instance.get("create_time") or ""), member,
                     str(instance.get("scaling_configuration_id") or ""))


def configuration_spec(configuration: Mapping[str, Any]) -> Spec:
    """What an AS configuration (as the API lists it) makes; its user-data decoded (None when unreadable)."""
    import base64
    import binascii
    import json

    config = configuration.get("instance_config")
    config = config if isinstance(config, Mapping) else {}
    document = None
    try:
        decoded = json.loads(base64.b64decode(str(config.get("user_data") or ""), validate=True))
        document = decoded if isinstance(decoded, dict) else None
    except (ValueError, binascii.Error):
        document = None
    return Spec(str(config.get("imageRef") or ""), str(config.get("flavorRef") or ""), document)


def server_spec(server: Mapping[str, Any]) -> Spec:
    """What a master's ECS was made from: ``image.id``, ``flavor.id`` and the user-data digest in its metadata."""
    image = server.get("image")
    flavor = server.get("flavor")
    metadata = server.get("metadata")
    found = metadata.get(DIGEST_KEY) if isinstance(metadata, Mapping) else None
    return Spec(str(image.get("id") or "") if isinstance(image, Mapping) else "",
                str(flavor.get("id") or "") if isinstance(flavor, Mapping) else "", None,
                found if isinstance(found, str) else None)


def wanted_agent_spec(config: Any, document: Mapping[str, Any]) -> Spec:
    """What the cluster file makes an agent from (``config``: a ``ClusterConfig``)."""
    return Spec(str(config.image_id), str(config.agent_flavor), document)


def wanted_master_spec(config: Any, document: Mapping[str, Any]) -> Spec:
    return Spec(str(config.image_id), str(config.master_flavor), document)


def plan_rollout(config: Any, seen: Any, documents: Mapping[str, Mapping[str, Any]],
                 members: Sequence[Mapping[str, Any]] = (), batch: int | None = None) -> Rollout:
    """The whole rollout from what ``discover`` found (``seen``: an ``Observed`` with its instances) and both
    roles' user-data; ``members`` (with their ``load``) order the agents, least loaded first."""
    group = seen.as_group
    have = configuration_spec(seen.as_config) if seen.as_config is not None and group is not None else None
    by_uuid = {str(m.get("uuid")): m for m in members}
    agents = plan_agents(
        have, wanted_agent_spec(config, documents["agent"]),
        str(group.get("scaling_configuration_id") or "") if group else None,
        [candidate(i, by_uuid.get(str(i.get("instance_id")))) for i in seen.instances],
        int(group.get("desire_instance_number") or 0) if group else 0, config.agents.min, config.agents.max, batch)
    made_from = {str(c.get("scaling_configuration_id")): configuration_spec(c).document for c in seen.as_configs}
    old = {str(i.get("instance_id")): made_from.get(str(i.get("scaling_configuration_id"))) for i in seen.instances}
    if any(old.get(iid) is not None and "lifecycle" not in (old.get(iid) or {}) for iid in agents.replace):
        agents = dataclasses.replace(agents, undrainable=True)
    names = [f"{config.cluster}-master-{i + 1}" for i in range(config.masters)]
    masters = plan_masters({n: server_spec(s) for n, s in seen.servers.items() if s.get("status") == "ACTIVE"},
                           wanted_master_spec(config, documents["master"]), names)
    return Rollout(agents, masters)
