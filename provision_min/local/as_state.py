"""The local AS service's memory: configurations, the group, its instances, hooks and lifecycle actions.

Kept in ``as.json`` in the cluster's folder (0600: configurations hold the agents' user-data with the cluster
secret), written atomically after every change, so a restarted service goes on where it stopped. The
transitions are pure (they take ``now`` and change this object only); the service does the I/O around them.

An instance walks OTC's ``life_cycle_state`` values: ``PENDING`` (launched) → ``INSERVICE`` (its machine
runs) → ``REMOVING_WAIT`` (an ``INSTANCE_TERMINATING`` hook holds it: a HANGING lifecycle action until a
callback or the hook's ``default_timeout``) → ``REMOVING`` (powering off) → gone.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid as uuidlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from provision_min.files import read_private, write_private

STATE_NAME = "as.json"
VERSION = 1
PENDING, INSERVICE, REMOVING_WAIT, REMOVING = "PENDING", "INSERVICE", "REMOVING_WAIT", "REMOVING"
ACTIVE = (PENDING, INSERVICE)
TERMINATING = "INSTANCE_TERMINATING"
POLICIES = ("OLD_CONFIG_OLD_INSTANCE", "OLD_CONFIG_NEW_INSTANCE", "OLD_INSTANCE", "NEW_INSTANCE")


@dataclass
class AsInstance:
    id: str  #: the node's uuid (meta_data.json ``uuid``)
    name: str  #: the machine name, ``<cluster>-agent-<index>``
    index: int
    ip: str
    config_id: str
    created_at: float
    state: str = PENDING
    stopping: bool = False  #: its poweroff has begun (REMOVING)


@dataclass
class Action:
    """One lifecycle action: an instance held by a hook until a callback or the timeout."""

    key: str
    instance_id: str
    hook_name: str
    deadline: float
    default_result: str
    status: str = "HANGING"  #: HANGING, then CONTINUE or ABANDON


@dataclass
class AsGroup:
    id: str
    name: str
    config_id: str
    desired: int
    min: int
    max: int
    terminate_policy: str = "OLD_CONFIG_OLD_INSTANCE"
    status: str = "PAUSED"  #: OTC creates groups disabled; ``resume`` enables
    zones: list[str] = field(default_factory=list)
    created_at: float = 0.0


@dataclass
class AsState:
    configurations: dict[str, dict[str, Any]] = field(default_factory=dict)
    group: AsGroup | None = None  #: the local cloud has one group (the agents)
    hooks: list[dict[str, Any]] = field(default_factory=list)
    instances: list[AsInstance] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)

    # -- the file --------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path) -> AsState:
        raw = read_private(path)
        if raw is None:
            return cls()
        data = json.loads(raw)
        if data.get("version") != VERSION:
            raise ValueError(f"{path}: not an AS state of version {VERSION}")
        group = data.get("group")
        return cls(configurations=dict(data.get("configurations") or {}),
                   group=AsGroup(**group) if group else None, hooks=list(data.get("hooks") or []),
                   instances=[AsInstance(**i) for i in data.get("instances") or []],
                   actions=[Action(**a) for a in data.get("actions") or []])

    def to_json(self) -> bytes:
        record = {"version": VERSION, "configurations": self.configurations,
                  "group": asdict(self.group) if self.group else None, "hooks": self.hooks,
                  "instances": [asdict(i) for i in self.instances], "actions": [asdict(a) for a in self.actions]}
        return (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()

    def save(self, path: Path) -> None:
        write_private(path, self.to_json())

    # -- looking up ------------------------------------------------------------------------------------------
    def instance(self, iid: str) -> AsInstance | None:
        return next((i for i in self.instances if i.id == iid), None)

    def active(self) -> list[AsInstance]:
        return [i for i in self.instances if i.state in ACTIVE]

    def terminating_hook(self) -> dict[str, Any] | None:
        return next((h for h in self.hooks if h.get("lifecycle_hook_type") == TERMINATING), None)

    def next_index(self) -> int:
        return max((i.index for i in self.instances), default=0) + 1

    # -- transitions (pure) ----------------------------------------------------------------------------------
    def add_instance(self, name: str, index: int, ip: str, now: float) -> AsInstance:
        assert self.group is not None
        created = AsInstance(id=str(uuidlib.uuid4()), name=name, index=index, ip=ip, config_id=self.group.config_id,
                             created_at=now)
        self.instances.append(created)
        return created

    def begin_removal(self, instance: AsInstance, now: float) -> Action | None:
        """Out of service: held by the terminating hook (a HANGING action, returned) or REMOVING at once."""
        hook = self.terminating_hook()
        if hook is None:
            instance.state = REMOVING
            return None
        instance.state = REMOVING_WAIT
        action = Action(key=secrets.token_hex(16), instance_id=instance.id, hook_name=str(hook["lifecycle_hook_name"]),
                        deadline=now + float(hook["default_timeout"]), default_result=str(hook["default_result"]))
        self.actions.append(action)
        return action

    def complete(self, action: Action, result: str, now: float) -> None:
        """A callback's result (or the timeout's default): EXTEND adds another ``default_timeout``; CONTINUE
        and ABANDON both let a terminating instance go (ABANDON skips the hooks after this one)."""
        if result == "EXTEND":
            hook = next((h for h in self.hooks if h.get("lifecycle_hook_name") == action.hook_name), None)
            action.deadline += float(hook["default_timeout"] if hook else 3600)
            return
        action.status = result
        instance = self.instance(action.instance_id)
        if instance is not None and instance.state == REMOVING_WAIT:
            instance.state = REMOVING

    def expired(self, now: float) -> list[Action]:
        return [a for a in self.actions if a.status == "HANGING" and now >= a.deadline]

    def hanging(self, instance_id: str | None = None) -> list[Action]:
        return [a for a in self.actions if a.status == "HANGING" and instance_id in (None, a.instance_id)]

    def forget(self, instance: AsInstance) -> None:
        self.instances.remove(instance)
        self.actions = [a for a in self.actions if a.instance_id != instance.id]


def victims(instances: list[AsInstance], count: int, policy: str, current_config: str) -> list[AsInstance]:
    """Which ``count`` in-service instances go when the group shrinks by itself, by its
    ``instance_terminate_policy``: OLD_CONFIG_* take instances of another configuration first."""
    def age(instance: AsInstance) -> tuple[float, int]:
        return (instance.created_at, instance.index)

    newest_first = policy in ("OLD_CONFIG_NEW_INSTANCE", "NEW_INSTANCE")
    ordered = sorted(instances, key=age, reverse=newest_first)
    if policy.startswith("OLD_CONFIG"):
        ordered.sort(key=lambda i: i.config_id == current_config)  # stable: old configuration first
    return ordered[:max(0, count)]


def new_access_key() -> tuple[str, str]:
    """An AK/SK pair in OTC's shape: 20 upper-case characters, 40 characters of secret."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(20)), secrets.token_urlsafe(30)[:40]


def utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
