"""The AS group's ``INSTANCE_TERMINATING`` lifecycle hook and the SMN topic it requires, on OTC.

Why a hook: every way an agent leaves the group — ``provision-min scale`` removing chosen instances, a scaling
policy, the console — puts the instance into ``REMOVING_WAIT`` with a HANGING lifecycle action. The node polls
its own hanging action (user-data ``lifecycle``), drains (user-data ``drain``) and calls back ``CONTINUE``
itself; a node that never calls back is removed after the hook's ``default_timeout`` (``default_result``
CONTINUE), so a dead node cannot hold the group. OTC requires an SMN topic URN on every hook, so ``up`` makes
one per cluster; nobody needs to subscribe to it (the nodes poll, they are not notified).

Pure step builders (``plan``'s style: ``Call``s with ``Ref``s) and the lookups ``discover`` adds. ``down``
deletes the group with ``force_delete``, which takes its hooks along; the topic is deleted after it.

SMN API v2 (the OTC/Huawei "Simple Message Notification" API reference): create ``POST
/v2/{project_id}/notifications/topics`` ``{"name", "display_name"}`` → ``topic_urn`` (the call is idempotent
by name); list ``GET .../notifications/topics?offset=&limit=`` → ``topics[]`` (``topic_urn``, ``name``) and
``topic_count``; delete ``DELETE .../notifications/topics/{topic_urn}``. AS: the hook calls of
``shared/reference/otc-api.md``; the list ``GET AS/scaling_lifecycle_hook/{gid}/list`` → ``lifecycle_hooks[]``;
update ``PUT AS/scaling_lifecycle_hook/{gid}/{name}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from provision_min.plan import Call, Ref, Step, at

if TYPE_CHECKING:
    from provision_min.config import ClusterConfig
    from provision_min.discover import Observed
    from provision_min.otc import OtcClient
    from provision_min.topology import Topology

HOOK_TYPE = "INSTANCE_TERMINATING"
HOOK_RESULT = "CONTINUE"  # a node that never calls back is removed anyway: a dead node must not hold the group
TOPIC_PAGE = 100


def hook_name(cluster: str) -> str:
    """``<cluster>-drain``, cut to OTC's 32 characters (the local cloud's AS service names it the same)."""
    return f"{cluster[:26]}-drain"


def topic_name(cluster: str) -> str:
    return f"{cluster}-agents-leaving"


@dataclass(frozen=True)
class HookSpec:
    name: str
    timeout: int
    topic: str

    def body(self) -> dict[str, Any]:
        return {"lifecycle_hook_name": self.name, "lifecycle_hook_type": HOOK_TYPE, "default_result": HOOK_RESULT,
                "default_timeout": self.timeout, "notification_topic_urn": Ref("smn_topic"),
                "notification_metadata": f"bootstrap-agent drain of {self.topic}"}

    def differs(self, existing: dict[str, Any]) -> list[str]:
        """What an existing hook of this name has otherwise (``up`` updates it)."""
        wanted = {"lifecycle_hook_type": HOOK_TYPE, "default_result": HOOK_RESULT, "default_timeout": self.timeout}
        return [f"{key} {existing.get(key)} -> {value}" for key, value in wanted.items() if existing.get(key) != value]


def hook_spec(config: ClusterConfig) -> HookSpec:
    return HookSpec(hook_name(config.cluster), config.drain.hook_timeout, topic_name(config.cluster))


def lifecycle_section(config: ClusterConfig, as_endpoint: str, group: str) -> dict[str, Any]:
    """The agents' user-data ``lifecycle``: where to ask whether this node is to leave, and how often."""
    return {"endpoint": as_endpoint, "group": group, "hook": hook_name(config.cluster), "poll": config.drain.poll}


# --- lookups (discover) ----------------------------------------------------------------------------------------


def find_topic(client: OtcClient, name: str) -> dict[str, Any] | None:
    """The cluster's topic by exact name (all pages), None when there is none."""
    offset = 0
    while True:
        answer = client.get("smn", "/notifications/topics", {"offset": offset, "limit": TOPIC_PAGE})
        topics = [t for t in (answer or {}).get("topics") or [] if isinstance(t, dict)]
        for topic in topics:
            if topic.get("name") == name:
                return topic
        total = (answer or {}).get("topic_count")
        offset += len(topics)
        if not topics or not isinstance(total, int) or offset >= total:
            return None


def find_hook(client: OtcClient, group_id: str, name: str) -> dict[str, Any] | None:
    answer = client.get("as", f"/scaling_lifecycle_hook/{group_id}/list")
    hooks = [h for h in (answer or {}).get("lifecycle_hooks") or [] if isinstance(h, dict)]
    return next((h for h in hooks if h.get("lifecycle_hook_name") == name), None)


def discover_lifecycle(client: OtcClient, topo: Topology, seen: Observed) -> None:
    seen.smn_topic = find_topic(client, topic_name(topo.cluster))
    if seen.as_group is not None:
        seen.hook = find_hook(client, str(seen.as_group["scaling_group_id"]), hook_name(topo.cluster))


# --- steps (plan) ----------------------------------------------------------------------------------------------


def topic_steps(config: ClusterConfig, seen: Observed) -> list[Step]:
    """The SMN topic, made before the group's hook (which names it)."""
    if seen.smn_topic is not None:
        return []
    name = topic_name(config.cluster)
    return [Call("smn_topic_created", f"SMN topic {name}", "POST", "smn", ("/notifications/topics",),
                 body={"name": name, "display_name": f"{config.cluster} agents leaving"},
                 produces=(("smn_topic", at("topic_urn")),))]


def hook_steps(config: ClusterConfig, seen: Observed) -> list[Step]:
    """The group's INSTANCE_TERMINATING hook: created when missing, updated when its timeout or result drifted."""
    spec = hook_spec(config)
    if seen.hook is None:
        return [Call("lifecycle_hook_created", f"lifecycle hook {spec.name} (default_timeout {spec.timeout} s)",
                     "POST", "as", ("/scaling_lifecycle_hook/", Ref("as_group")), body=spec.body())]
    changes = spec.differs(seen.hook)
    if not changes:
        return []
    body = {k: v for k, v in spec.body().items() if k != "lifecycle_hook_name"}
    return [Call("lifecycle_hook_updated", f"lifecycle hook {spec.name} ({', '.join(changes)})", "PUT", "as",
                 ("/scaling_lifecycle_hook/", Ref("as_group"), f"/{spec.name}"), body=body)]


def down_steps(seen: Observed, cluster: str) -> list[Step]:
    """The topic goes after the group (whose forced delete takes the hook along)."""
    if seen.smn_topic is None:
        return []
    return [Call("smn_topic_deleted", f"SMN topic {topic_name(cluster)}", "DELETE", "smn",
                 ("/notifications/topics/", Ref("smn_topic")))]
