"""A client of OTC's Auto Scaling API (``autoscaling-api/v1/{project_id}``): the calls this project makes.

One client for everyone who talks to a group: the node (its own pending removal, the lifecycle callback,
signed with the agency's temporary AK/SK), ``provision-min`` on OTC (a token) and ``provision-min`` against
the local cloud's AS service (the local operator's AK/SK). Payloads are the documented ones
(``docs/otc.md``, the AS API reference): groups listed by name, instances paged with ``start_number``/
``limit``/``total_number``, the instance ``REMOVE`` action with ``instance_delete``, lifecycle hooks, the
hanging-instance list (``instance_hanging_info``) and the callback by ``lifecycle_action_key``.

Every failure is one ``AutoScalingError`` line naming the call; OTC's error bodies are read as the
provisioner reads them (``otc_errors``). Nothing here logs a key or a token.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import requests

from bootstrap_agent.otc_errors import error_fields
from bootstrap_agent.otc_signing import SigningKey, sign_request

DEFAULT_TIMEOUT = (5.0, 30.0)
PAGE = 100  #: the instance list's largest page
TERMINATING = "INSTANCE_TERMINATING"
RESULTS = ("CONTINUE", "ABANDON", "EXTEND")


class AutoScalingError(Exception):
    """A failed AS call, in one line: ``<call>: HTTP <status> <code>: <message>``."""

    def __init__(self, call: str, message: str, status: int = 0, code: str = "") -> None:
        self.call, self.status, self.code, self.message = call, status, code, message
        where = f"HTTP {status}" + (f" {code}" if code else "") if status else "no answer"
        super().__init__(f"{call}: {where}: {message}")


# -- authentication ----------------------------------------------------------------------------------------
class Auth(Protocol):
    def headers(self, method: str, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        """The headers that authenticate this request."""


@dataclass(frozen=True)
class TokenAuth:
    """An IAM token (``X-Auth-Token``); ``token_source`` is asked on every call (it caches and renews)."""

    token_source: Callable[[], str]

    def headers(self, method: str, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        return {"X-Auth-Token": self.token_source()}


@dataclass(frozen=True)
class AkSkAuth:
    """AK/SK signing; ``key_source`` is asked on every call, so a renewed temporary key is used at once."""

    key_source: Callable[[], SigningKey]

    def headers(self, method: str, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        return sign_request(method, url, headers, body, self.key_source())


# -- what the API answers ----------------------------------------------------------------------------------
def _int(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _str(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""


@dataclass(frozen=True)
class Group:
    id: str
    name: str
    status: str  #: INSERVICE, PAUSED, ERROR, DELETING
    desired: int
    min: int
    max: int
    current: int
    configuration_id: str
    terminate_policy: str

    @classmethod
    def of(cls, data: dict[str, Any]) -> Group:
        return cls(_str(data, "scaling_group_id"), _str(data, "scaling_group_name"),
                   _str(data, "scaling_group_status"), _int(data, "desire_instance_number"),
                   _int(data, "min_instance_number"), _int(data, "max_instance_number"),
                   _int(data, "current_instance_number"), _str(data, "scaling_configuration_id"),
                   _str(data, "instance_terminate_policy"))


@dataclass(frozen=True)
class Instance:
    id: str
    name: str
    state: str  #: life_cycle_state: PENDING, INSERVICE, REMOVING_WAIT, REMOVING, ...
    health: str
    configuration_id: str
    created: str

    @classmethod
    def of(cls, data: dict[str, Any]) -> Instance:
        return cls(_str(data, "instance_id"), _str(data, "instance_name"), _str(data, "life_cycle_state"),
                   _str(data, "health_status"), _str(data, "scaling_configuration_id"), _str(data, "create_time"))


@dataclass(frozen=True)
class Hook:
    name: str
    type: str
    default_result: str
    default_timeout: int
    topic_urn: str

    @classmethod
    def of(cls, data: dict[str, Any]) -> Hook:
        return cls(_str(data, "lifecycle_hook_name"), _str(data, "lifecycle_hook_type"),
                   _str(data, "default_result"), _int(data, "default_timeout"), _str(data, "notification_topic_urn"))


@dataclass(frozen=True)
class HangingAction:
    instance_id: str
    action_key: str
    hook_name: str
    status: str  #: lifecycle_hook_status: HANGING, CONTINUE, ABANDON
    timeout: str  #: when the default result applies (UTC)
    default_result: str

    @classmethod
    def of(cls, data: dict[str, Any]) -> HangingAction:
        return cls(_str(data, "instance_id"), _str(data, "lifecycle_action_key"), _str(data, "lifecycle_hook_name"),
                   _str(data, "lifecycle_hook_status"), _str(data, "timeout"), _str(data, "default_result"))


# -- the client --------------------------------------------------------------------------------------------
class AutoScaling:
    """The AS API of one project: ``endpoint`` is ``https://as.<region>.../autoscaling-api/v1/<project_id>``."""

    def __init__(self, endpoint: str, auth: Auth, session: requests.Session | None = None,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.auth = auth
        self.session = session or requests.Session()
        self.timeout = timeout

    # transport
    def call(self, method: str, path: str, body: dict[str, Any] | None = None,
             params: dict[str, str | int] | None = None) -> Any:
        """One call; the decoded JSON answer (None for an empty one, e.g. 204)."""
        request = requests.Request(method, self.endpoint + path, params=params).prepare()
        url = str(request.url)
        data = b"" if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        call = f"{method} {path}"
        try:
            headers.update(self.auth.headers(method, url, dict(headers), data))
            response = self.session.request(method, url, data=data or None, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise AutoScalingError(call, " ".join(f"{type(exc).__name__}: {exc}".split())[:300]) from None
        if response.status_code >= 400:
            code, message = error_fields(response)
            raise AutoScalingError(call, message, response.status_code, code)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise AutoScalingError(call, "the answer is not JSON", response.status_code) from None

    def _object(self, answer: Any, key: str, call: str) -> Any:
        value = answer.get(key) if isinstance(answer, dict) else None
        if value is None:
            raise AutoScalingError(call, f"the answer has no {key}")
        return value

    def _dicts(self, answer: Any, key: str, call: str) -> list[dict[str, Any]]:
        items = self._object(answer, key, call)
        if not isinstance(items, list):
            raise AutoScalingError(call, f"{key} is not a list")
        return [item for item in items if isinstance(item, dict)]

    # groups
    def find_group(self, name: str) -> Group | None:
        """The group called exactly ``name`` (the API matches by substring), or None."""
        answer = self.call("GET", "/scaling_group", params={"scaling_group_name": name})
        found = [Group.of(g) for g in self._dicts(answer, "scaling_groups", "GET /scaling_group")]
        exact = [g for g in found if g.name == name]
        if len(exact) > 1:
            raise AutoScalingError("GET /scaling_group", f"{len(exact)} groups are called {name}")
        return exact[0] if exact else None

    def group(self, gid: str) -> Group:
        path = f"/scaling_group/{gid}"
        return Group.of(self._object(self.call("GET", path), "scaling_group", f"GET {path}"))

    def create_group(self, body: dict[str, Any]) -> str:
        return str(self._object(self.call("POST", "/scaling_group", body), "scaling_group_id", "POST /scaling_group"))

    def update_group(self, gid: str, **fields: Any) -> None:
        self.call("PUT", f"/scaling_group/{gid}", fields)

    def set_desired(self, gid: str, count: int) -> None:
        self.update_group(gid, desire_instance_number=count)

    def group_action(self, gid: str, action: str) -> None:
        """``resume`` (enable) or ``pause`` the group: 204."""
        self.call("POST", f"/scaling_group/{gid}/action", {"action": action})

    # instances
    def instances(self, gid: str) -> list[Instance]:
        """Every instance of the group, all pages."""
        path = f"/scaling_group_instance/{gid}/list"
        found: list[Instance] = []
        while True:
            answer = self.call("GET", path, params={"start_number": len(found), "limit": PAGE})
            page = self._dicts(answer, "scaling_group_instances", f"GET {path}")
            found += [Instance.of(item) for item in page]
            total = answer.get("total_number") if isinstance(answer, dict) else None
            if not page or not isinstance(total, int) or len(found) >= total:
                return found

    def remove(self, gid: str, instance_ids: Iterable[str], delete: bool = True) -> None:
        """Remove exactly these instances (not the group's own choice); ``delete`` also deletes the servers.
        With an ``INSTANCE_TERMINATING`` hook they first wait in ``REMOVING_WAIT``."""
        ids = list(instance_ids)
        if ids:
            self.call("POST", f"/scaling_group_instance/{gid}/action",
                      {"action": "REMOVE", "instances_id": ids, "instance_delete": "yes" if delete else "no"})

    # lifecycle hooks
    def create_hook(self, gid: str, name: str, *, topic_urn: str, hook_type: str = TERMINATING,
                    default_result: str = "CONTINUE", default_timeout: int = 3600) -> Hook:
        body = {"lifecycle_hook_name": name, "lifecycle_hook_type": hook_type, "default_result": default_result,
                "default_timeout": default_timeout, "notification_topic_urn": topic_urn}
        answer = self.call("POST", f"/scaling_lifecycle_hook/{gid}", body)
        return Hook.of(answer if isinstance(answer, dict) else body)

    def hooks(self, gid: str) -> list[Hook]:
        path = f"/scaling_lifecycle_hook/{gid}/list"
        return [Hook.of(h) for h in self._dicts(self.call("GET", path), "lifecycle_hooks", f"GET {path}")]

    def delete_hook(self, gid: str, name: str) -> None:
        self.call("DELETE", f"/scaling_lifecycle_hook/{gid}/{name}")

    def hanging(self, gid: str, instance_id: str | None = None) -> list[HangingAction]:
        """The group's pending lifecycle actions (or one instance's)."""
        path = f"/scaling_instance_hook/{gid}/list"
        params: dict[str, str | int] = {"instance_id": instance_id} if instance_id else {}
        answer = self.call("GET", path, params=params)
        return [HangingAction.of(a) for a in self._dicts(answer, "instance_hanging_info", f"GET {path}")]

    def callback(self, gid: str, action_key: str, result: str = "CONTINUE") -> None:
        """Complete a lifecycle action: CONTINUE (go on), ABANDON, or EXTEND (wait longer)."""
        if result not in RESULTS:
            raise AutoScalingError("PUT callback", f"result {result!r}: one of {', '.join(RESULTS)}")
        self.call("PUT", f"/scaling_instance_hook/{gid}/callback",
                  {"lifecycle_action_key": action_key, "lifecycle_action_result": result})

    def callback_instance(self, gid: str, instance_id: str, hook_name: str, result: str = "CONTINUE") -> None:
        if result not in RESULTS:
            raise AutoScalingError("PUT callback", f"result {result!r}: one of {', '.join(RESULTS)}")
        self.call("PUT", f"/scaling_instance_hook/{gid}/callback",
                  {"instance_id": instance_id, "lifecycle_hook_name": hook_name, "lifecycle_action_result": result})

    # configurations
    def create_configuration(self, name: str, instance_config: dict[str, Any]) -> str:
        body = {"scaling_configuration_name": name, "instance_config": instance_config}
        answer = self.call("POST", "/scaling_configuration", body)
        return str(self._object(answer, "scaling_configuration_id", "POST /scaling_configuration"))

    def configuration(self, cid: str) -> dict[str, Any]:
        path = f"/scaling_configuration/{cid}"
        found = self._object(self.call("GET", path), "scaling_configuration", f"GET {path}")
        if not isinstance(found, dict):
            raise AutoScalingError(f"GET {path}", "scaling_configuration is not an object")
        return found

    def configurations(self, name: str | None = None) -> list[dict[str, Any]]:
        """Configurations whose name contains ``name`` (all when None)."""
        params: dict[str, str | int] = {"scaling_configuration_name": name} if name else {}
        answer = self.call("GET", "/scaling_configuration", params=params)
        return self._dicts(answer, "scaling_configurations", "GET /scaling_configuration")
