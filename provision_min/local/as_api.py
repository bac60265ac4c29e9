"""The local AS service's answers: OTC's AS API paths and payloads that this project uses, on ``AsState``.

Pure: a request (method, path below ``/autoscaling-api/v1/local``, query, JSON body) and the state in, an
(HTTP status, JSON body) out, the state changed in place; refusals raise ``Fault`` with OTC's error shape
``{"error": {"code": "AS.xxxx", "message": ...}}``. The service (``as_service``) authenticates first, holds
the lock, saves the state after a change and does the machines' I/O.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from provision_min.local.as_state import (
    POLICIES,
    REMOVING,
    REMOVING_WAIT,
    TERMINATING,
    AsGroup,
    AsInstance,
    AsState,
    utc,
)

HOOK_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
HOOK_TYPES = ("INSTANCE_LAUNCHING", TERMINATING)
RESULTS = ("CONTINUE", "ABANDON")
MAX_PAGE = 100


class Fault(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


@dataclass
class Request:
    method: str
    path: str  #: below the project's prefix, e.g. ``/scaling_group/<id>``
    query: dict[str, str]
    body: Any
    now: float


@dataclass
class Api:
    state: AsState
    health: Callable[[AsInstance], str] = lambda _i: "NORMAL"
    min_hook_timeout: int = 300  #: OTC's lower bound; the tests lower it
    changed: bool = False

    def answer(self, r: Request) -> tuple[int, Any]:
        self.changed = r.method != "GET"
        routes: list[tuple[str, str, Callable[..., tuple[int, Any]]]] = [
            ("GET", r"/scaling_configuration", self.list_configurations),
            ("POST", r"/scaling_configuration", self.create_configuration),
            ("GET", r"/scaling_configuration/([^/]+)", self.get_configuration),
            ("DELETE", r"/scaling_configuration/([^/]+)", self.delete_configuration),
            ("GET", r"/scaling_group", self.list_groups),
            ("POST", r"/scaling_group", self.create_group),
            ("GET", r"/scaling_group/([^/]+)", self.get_group),
            ("PUT", r"/scaling_group/([^/]+)", self.update_group),
            ("POST", r"/scaling_group/([^/]+)/action", self.group_action),
            ("GET", r"/scaling_group_instance/([^/]+)/list", self.list_instances),
            ("POST", r"/scaling_group_instance/([^/]+)/action", self.instance_action),
            ("POST", r"/scaling_lifecycle_hook/([^/]+)", self.create_hook),
            ("GET", r"/scaling_lifecycle_hook/([^/]+)/list", self.list_hooks),
            ("DELETE", r"/scaling_lifecycle_hook/([^/]+)/([^/]+)", self.delete_hook),
            ("GET", r"/scaling_instance_hook/([^/]+)/list", self.list_hanging),
            ("PUT", r"/scaling_instance_hook/([^/]+)/callback", self.callback),
        ]
        known_path = False
        for method, pattern, handler in routes:
            match = re.fullmatch(pattern, r.path)
            if match is None:
                continue
            known_path = True
            if method == r.method:
                return handler(r, *match.groups())
        if known_path:
            raise Fault(405, "AS.0405", f"{r.method} is not allowed on {r.path}")
        raise Fault(404, "AS.0404", f"no such API path: {r.path}")

    # -- helpers ---------------------------------------------------------------------------------------------
    @staticmethod
    def _body(r: Request) -> dict[str, Any]:
        if not isinstance(r.body, dict):
            raise Fault(400, "AS.0001", "the request body must be a JSON object")
        return r.body

    def _group(self, gid: str) -> AsGroup:
        group = self.state.group
        if group is None or group.id != gid:
            raise Fault(404, "AS.2007", f"scaling group {gid} does not exist")
        return group

    @staticmethod
    def _int(body: dict[str, Any], key: str, default: int | None = None) -> int:
        value = body.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise Fault(400, "AS.0001", f"{key} must be a non-negative integer")
        return value

    # -- configurations ------------------------------------------------------------------------------------
    def list_configurations(self, r: Request) -> tuple[int, Any]:
        wanted = r.query.get("scaling_configuration_name", "")
        items = [c for c in self.state.configurations.values() if wanted in c["scaling_configuration_name"]]
        return 200, {"scaling_configurations": items, "total_number": len(items), "start_number": 0,
                     "limit": len(items)}

    def create_configuration(self, r: Request) -> tuple[int, Any]:
        body = self._body(r)
        name = body.get("scaling_configuration_name")
        config = body.get("instance_config")
        if not isinstance(name, str) or not name or not isinstance(config, dict):
            raise Fault(400, "AS.0001", "scaling_configuration_name and instance_config are required")
        for key in ("flavorRef", "imageRef", "key_name"):
            if not isinstance(config.get(key), str) or not config[key]:
                raise Fault(400, "AS.0001", f"instance_config.{key} is required")
        try:
            base64.b64decode(str(config.get("user_data", "")), validate=True)
        except (binascii.Error, ValueError):
            raise Fault(400, "AS.0001", "instance_config.user_data must be base64") from None
        cid = str(secrets.token_hex(16))
        self.state.configurations[cid] = {"scaling_configuration_id": cid, "scaling_configuration_name": name,
                                          "instance_config": config, "create_time": utc(r.now)}
        return 200, {"scaling_configuration_id": cid}

    def get_configuration(self, r: Request, cid: str) -> tuple[int, Any]:
        if cid not in self.state.configurations:
            raise Fault(404, "AS.1002", f"scaling configuration {cid} does not exist")
        return 200, {"scaling_configuration": self.state.configurations[cid]}

    def delete_configuration(self, r: Request, cid: str) -> tuple[int, Any]:
        self.get_configuration(r, cid)
        if self.state.group is not None and self.state.group.config_id == cid:
            raise Fault(400, "AS.1038", f"scaling configuration {cid} is used by a scaling group")
        del self.state.configurations[cid]
        return 204, None

    # -- the group -----------------------------------------------------------------------------------------
    def group_view(self, group: AsGroup) -> dict[str, Any]:
        config = self.state.configurations.get(group.config_id, {})
        busy = any(i.state != "INSERVICE" for i in self.state.instances) or len(self.state.active()) != group.desired
        return {"scaling_group_id": group.id, "scaling_group_name": group.name,
                "scaling_group_status": group.status, "scaling_configuration_id": group.config_id,
                "scaling_configuration_name": config.get("scaling_configuration_name", ""),
                "current_instance_number": len(self.state.instances), "desire_instance_number": group.desired,
                "min_instance_number": group.min, "max_instance_number": group.max,
                "available_zones": group.zones, "instance_terminate_policy": group.terminate_policy,
                "is_scaling": busy and group.status == "INSERVICE", "create_time": utc(group.created_at)}

    def list_groups(self, r: Request) -> tuple[int, Any]:
        wanted = r.query.get("scaling_group_name", "")
        group = self.state.group
        items = [self.group_view(group)] if group is not None and wanted in group.name else []
        return 200, {"scaling_groups": items, "total_number": len(items), "start_number": 0, "limit": len(items)}

    def create_group(self, r: Request) -> tuple[int, Any]:
        body = self._body(r)
        if self.state.group is not None:
            raise Fault(400, "AS.2005", f"the local cloud has one scaling group ({self.state.group.name})")
        name, cid = body.get("scaling_group_name"), body.get("scaling_configuration_id")
        if not isinstance(name, str) or not name:
            raise Fault(400, "AS.0001", "scaling_group_name is required")
        if cid not in self.state.configurations:
            raise Fault(400, "AS.1002", f"scaling configuration {cid} does not exist")
        policy = body.get("instance_terminate_policy", "OLD_CONFIG_OLD_INSTANCE")
        if policy not in POLICIES:
            raise Fault(400, "AS.0001", f"instance_terminate_policy must be one of {', '.join(POLICIES)}")
        zones = body.get("available_zones") or []
        group = AsGroup(id=secrets.token_hex(16), name=name, config_id=str(cid),
                        desired=self._int(body, "desire_instance_number", 0),
                        min=self._int(body, "min_instance_number", 0), max=self._int(body, "max_instance_number", 0),
                        terminate_policy=str(policy), zones=[str(z) for z in zones], created_at=r.now)
        self._check_bounds(group.desired, group.min, group.max)
        self.state.group = group
        return 200, {"scaling_group_id": group.id}

    @staticmethod
    def _check_bounds(desired: int, low: int, high: int) -> None:
        if not low <= desired <= high:
            raise Fault(400, "AS.2008", f"desire_instance_number {desired} must lie between min_instance_number "
                                        f"{low} and max_instance_number {high}")

    def get_group(self, r: Request, gid: str) -> tuple[int, Any]:
        return 200, {"scaling_group": self.group_view(self._group(gid))}

    def update_group(self, r: Request, gid: str) -> tuple[int, Any]:
        group, body = self._group(gid), self._body(r)
        desired = self._int(body, "desire_instance_number", group.desired)
        low = self._int(body, "min_instance_number", group.min)
        high = self._int(body, "max_instance_number", group.max)
        self._check_bounds(desired, low, high)
        cid = body.get("scaling_configuration_id", group.config_id)
        if cid not in self.state.configurations:
            raise Fault(400, "AS.1002", f"scaling configuration {cid} does not exist")
        policy = body.get("instance_terminate_policy", group.terminate_policy)
        if policy not in POLICIES:
            raise Fault(400, "AS.0001", f"instance_terminate_policy must be one of {', '.join(POLICIES)}")
        group.desired, group.min, group.max = desired, low, high
        group.config_id, group.terminate_policy = str(cid), str(policy)
        return 200, {"scaling_group_id": group.id}

    def group_action(self, r: Request, gid: str) -> tuple[int, Any]:
        group, action = self._group(gid), self._body(r).get("action")
        if action not in ("resume", "pause"):
            raise Fault(400, "AS.0001", "action must be resume or pause")
        group.status = "INSERVICE" if action == "resume" else "PAUSED"
        return 204, None

    # -- instances -----------------------------------------------------------------------------------------
    def instance_view(self, group: AsGroup, i: AsInstance) -> dict[str, Any]:
        config = self.state.configurations.get(i.config_id, {})
        return {"instance_id": i.id, "instance_name": i.name, "scaling_group_id": group.id,
                "scaling_group_name": group.name, "life_cycle_state": i.state, "health_status": self.health(i),
                "scaling_configuration_id": i.config_id,
                "scaling_configuration_name": config.get("scaling_configuration_name", ""),
                "create_time": utc(i.created_at), "protect_from_scaling_down": False}

    def list_instances(self, r: Request, gid: str) -> tuple[int, Any]:
        group = self._group(gid)
        try:
            start = int(r.query.get("start_number", "0"))
            limit = int(r.query.get("limit", "20"))
        except ValueError:
            raise Fault(400, "AS.0001", "start_number and limit must be integers") from None
        if start < 0 or not 0 < limit <= MAX_PAGE:
            raise Fault(400, "AS.0001", f"start_number must be >= 0 and limit 1..{MAX_PAGE}")
        items = [self.instance_view(group, i) for i in sorted(self.state.instances, key=lambda i: i.index)]
        return 200, {"scaling_group_instances": items[start:start + limit], "total_number": len(items),
                     "start_number": start, "limit": limit}

    def instance_action(self, r: Request, gid: str) -> tuple[int, Any]:
        group, body = self._group(gid), self._body(r)
        ids = body.get("instances_id")
        if body.get("action") != "REMOVE":
            raise Fault(400, "AS.0001", "the local cloud supports the instance action REMOVE only")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise Fault(400, "AS.0001", "instances_id must be a non-empty list of instance ids")
        if body.get("instance_delete") not in (None, "yes", "no"):
            raise Fault(400, "AS.0001", "instance_delete must be yes or no")
        chosen = []
        for iid in dict.fromkeys(ids):
            instance = self.state.instance(iid)
            if instance is None:
                raise Fault(400, "AS.4006", f"instance {iid} is not in scaling group {group.name}")
            if instance.state in (REMOVING_WAIT, REMOVING):
                raise Fault(400, "AS.4011", f"instance {iid} is already being removed ({instance.state})")
            chosen.append(instance)
        if group.desired - len(chosen) < group.min:
            raise Fault(400, "AS.4013", f"removing {len(chosen)} instance(s) would leave fewer than "
                                        f"min_instance_number {group.min}")
        group.desired -= len(chosen)  # as on OTC: removed instances are not replaced
        for instance in chosen:
            self.state.begin_removal(instance, r.now)
        return 204, None

    # -- lifecycle hooks -------------------------------------------------------------------------------------
    def create_hook(self, r: Request, gid: str) -> tuple[int, Any]:
        self._group(gid)
        body = self._body(r)
        name = body.get("lifecycle_hook_name")
        if not isinstance(name, str) or not HOOK_NAME.fullmatch(name):
            raise Fault(400, "AS.0001", "lifecycle_hook_name: 1 to 32 letters, digits, _ or -")
        if any(h["lifecycle_hook_name"] == name for h in self.state.hooks):
            raise Fault(400, "AS.3004", f"lifecycle hook {name} exists")
        kind = body.get("lifecycle_hook_type")
        if kind not in HOOK_TYPES:
            raise Fault(400, "AS.0001", f"lifecycle_hook_type must be one of {', '.join(HOOK_TYPES)}")
        result = body.get("default_result", "ABANDON")
        if result not in RESULTS:
            raise Fault(400, "AS.0001", "default_result must be CONTINUE or ABANDON")
        timeout = self._int(body, "default_timeout", 3600)
        if not self.min_hook_timeout <= timeout <= 86400:
            raise Fault(400, "AS.0001", f"default_timeout must lie between {self.min_hook_timeout} and 86400")
        topic = body.get("notification_topic_urn")
        if not isinstance(topic, str) or not topic.startswith("urn:smn:"):
            raise Fault(400, "AS.0001", "notification_topic_urn (urn:smn:...) is required")
        hook = {"lifecycle_hook_name": name, "lifecycle_hook_type": kind, "default_result": result,
                "default_timeout": timeout, "notification_topic_urn": topic,
                "notification_topic_name": topic.rsplit(":", 1)[-1], "notification_metadata": "",
                "create_time": utc(r.now)}
        self.state.hooks.append(hook)
        return 200, hook

    def list_hooks(self, r: Request, gid: str) -> tuple[int, Any]:
        self._group(gid)
        return 200, {"lifecycle_hooks": list(self.state.hooks)}

    def delete_hook(self, r: Request, gid: str, name: str) -> tuple[int, Any]:
        self._group(gid)
        if not any(h["lifecycle_hook_name"] == name for h in self.state.hooks):
            raise Fault(404, "AS.3003", f"lifecycle hook {name} does not exist")
        self.state.hooks = [h for h in self.state.hooks if h["lifecycle_hook_name"] != name]
        return 204, None

    def list_hanging(self, r: Request, gid: str) -> tuple[int, Any]:
        group = self._group(gid)
        wanted = r.query.get("instance_id") or None
        items = [{"instance_id": a.instance_id, "scaling_group_id": group.id, "lifecycle_hook_name": a.hook_name,
                  "lifecycle_action_key": a.key, "lifecycle_hook_status": a.status, "timeout": utc(a.deadline),
                  "default_result": a.default_result} for a in self.state.hanging(wanted)]
        return 200, {"instance_hanging_info": items}

    def callback(self, r: Request, gid: str) -> tuple[int, Any]:
        self._group(gid)
        body = self._body(r)
        result = body.get("lifecycle_action_result")
        if result not in ("CONTINUE", "ABANDON", "EXTEND"):
            raise Fault(400, "AS.0001", "lifecycle_action_result must be CONTINUE, ABANDON or EXTEND")
        key = body.get("lifecycle_action_key")
        if isinstance(key, str) and key:
            found = [a for a in self.state.hanging() if a.key == key]
        else:
            iid, hook = body.get("instance_id"), body.get("lifecycle_hook_name")
            if not isinstance(iid, str) or not isinstance(hook, str):
                raise Fault(400, "AS.0001", "lifecycle_action_key, or instance_id and lifecycle_hook_name, required")
            found = [a for a in self.state.hanging(iid) if a.hook_name == hook]
        if not found:
            raise Fault(400, "AS.3011", "no hanging lifecycle action matches (already completed or timed out?)")
        self.state.complete(found[0], str(result), r.now)
        return 204, None

