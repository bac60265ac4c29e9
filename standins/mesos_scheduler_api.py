"""``POST /api/v1/scheduler``: the v1 scheduler HTTP API of the stand-in master, JSON only.

The checks and their messages follow ``Master::Http::scheduler`` (apache/mesos 1.11.0 ``src/master/http.cpp``)
and ``validation::scheduler::call::validate`` (``src/master/validation.cpp``), in that order: leader (else 307 /
503), POST, ``Content-Type``, body, ``type`` and its sub-message, ``Accept`` for SUBSCRIBE, no
``Mesos-Stream-Id`` on SUBSCRIBE, a known framework, a matching ``Mesos-Stream-Id`` on every other call.
The stand-in cannot read protobuf: an ``application/x-protobuf`` body gets the real master's answer to a body it
cannot parse, ``400 Failed to parse body into Call protobuf`` (rule MB7). Calls answer ``202 Accepted``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from standins.common import Response
from standins.mesos_cluster import Cluster
from standins.mesos_http import Request, Stream, json_text
from standins.mesos_scheduler_events import FrameworkStream

APPLICATION_JSON = "application/json"
APPLICATION_PROTOBUF = "application/x-protobuf"
_CALLS = {"SUBSCRIBE", "TEARDOWN", "ACCEPT", "DECLINE", "ACCEPT_INVERSE_OFFERS", "DECLINE_INVERSE_OFFERS",
          "REVIVE", "KILL", "SHUTDOWN", "ACKNOWLEDGE", "ACKNOWLEDGE_OPERATION_STATUS", "RECONCILE",
          "RECONCILE_OPERATIONS", "MESSAGE", "REQUEST", "SUPPRESS", "UPDATE_FRAMEWORK"}
_NEEDS = {"SUBSCRIBE": "subscribe", "ACCEPT": "accept", "DECLINE": "decline", "KILL": "kill",
          "SHUTDOWN": "shutdown", "ACKNOWLEDGE": "acknowledge", "RECONCILE": "reconcile", "MESSAGE": "message",
          "REQUEST": "request", "UPDATE_FRAMEWORK": "update_framework",
          "ACCEPT_INVERSE_OFFERS": "accept_inverse_offers", "DECLINE_INVERSE_OFFERS": "decline_inverse_offers"}


def accepts(request: Request, media: str) -> bool:
    accept = request.header("Accept")
    if accept is None:
        return True
    kinds = [part.split(";")[0].strip() for part in accept.split(",")]
    return any(k in (media, "*/*", media.split("/")[0] + "/*") for k in kinds)


def parse_call(request: Request) -> dict[str, Any] | Response:
    """Content type and body checks shared by ``/api/v1/scheduler`` and ``/api/v1`` (``Master::Http::api``)."""
    content_type = request.header("Content-Type")
    if content_type is None:
        return json_text(400, "Expecting 'Content-Type' to be present")
    if content_type == APPLICATION_PROTOBUF:
        return json_text(400, "Failed to parse body into Call protobuf")
    if content_type != APPLICATION_JSON:
        return json_text(415, f"Expecting 'Content-Type' of {APPLICATION_JSON} or {APPLICATION_PROTOBUF}")
    try:
        call = request.json()
    except ValueError as exc:
        return json_text(400, f"Failed to parse body into JSON: {exc}")
    if not isinstance(call, dict):
        return json_text(400, "Failed to convert JSON into Call protobuf: Expecting a JSON object")
    return call


def _refuse_seconds(call: dict[str, Any], key: str) -> float:
    filters = call.get(key, {}).get("filters", {}) if isinstance(call.get(key), dict) else {}
    value = filters.get("refuse_seconds", 1.0) if isinstance(filters, dict) else 1.0
    return float(value) if isinstance(value, int | float) else 1.0


class SchedulerApi:
    def __init__(self, cluster: Cluster, master_info: Callable[[], dict[str, Any]]) -> None:
        self.cluster = cluster
        self.master_info = master_info

    def handle(self, request: Request) -> Response | Stream:
        if request.method != "POST":
            return Response(405, b"", "text/plain", (("Allow", "POST"),))
        call = parse_call(request)
        if isinstance(call, Response):
            return call
        kind = call.get("type")
        if kind is not None and kind not in _CALLS:
            return json_text(400, f"Failed to convert JSON into Call protobuf: Failed to find enum for '{kind}'")
        if kind is None:
            return json_text(400, "Failed to validate scheduler::Call: Expecting 'type' to be present")
        needed = _NEEDS.get(kind)
        if needed and not isinstance(call.get(needed), dict):
            return json_text(400, f"Failed to validate scheduler::Call: Expecting '{needed}' to be present")
        if kind == "SUBSCRIBE":
            return self._subscribe(request, call)
        if not isinstance(call.get("framework_id"), dict):
            return json_text(400, "Failed to validate scheduler::Call: Expecting 'framework_id' to be present")
        framework = self.cluster.frameworks.get(str(call["framework_id"].get("value", "")))
        if framework is None:
            return json_text(400, "Framework cannot be found")
        if not framework.active:
            return json_text(403, "Framework is not subscribed")
        stream_id = request.header("Mesos-Stream-Id")
        if stream_id is None:
            return json_text(400, "All non-subscribe calls should include the 'Mesos-Stream-Id' header")
        if framework.stream is None or stream_id != framework.stream.stream_id:
            return json_text(400, f"The stream ID '{stream_id}' included in this request didn't match the stream "
                                  f"ID currently associated with framework ID {framework.id}")
        self._dispatch(kind, call, framework)
        return Response(202, b"", "text/plain")

    def _dispatch(self, kind: str, call: dict[str, Any], framework: Any) -> None:
        cluster = self.cluster
        if kind == "TEARDOWN":
            cluster.teardown(framework)
        elif kind == "ACCEPT":
            accept = call["accept"]
            offer_ids = [str(o.get("value", "")) for o in accept.get("offer_ids", []) if isinstance(o, dict)]
            cluster.accept(framework, offer_ids, list(accept.get("operations", [])), _refuse_seconds(call, "accept"))
        elif kind == "DECLINE":
            offer_ids = [str(o.get("value", "")) for o in call["decline"].get("offer_ids", []) if isinstance(o, dict)]
            cluster.decline(framework, offer_ids, _refuse_seconds(call, "decline"))
        elif kind == "KILL":
            cluster.kill(framework, str(call["kill"].get("task_id", {}).get("value", "")))
        elif kind == "REVIVE":
            with cluster.lock:
                framework.filters.clear()
        elif kind == "ACKNOWLEDGE":
            cluster.acknowledge(framework, call["acknowledge"])
        # SUPPRESS, RECONCILE, MESSAGE, REQUEST, inverse offers: accepted and ignored (no inverse offers are
        # made).

    def _subscribe(self, request: Request, call: dict[str, Any]) -> Response | Stream:
        info = call["subscribe"].get("framework_info")
        if not isinstance(info, dict) or not isinstance(info.get("name"), str) or not isinstance(
                info.get("user"), str):
            return json_text(400, "Failed to convert JSON into Call protobuf: "
                                  "Missing required fields: subscribe.framework_info.user, "
                                  "subscribe.framework_info.name")
        given = call.get("framework_id")
        if isinstance(given, dict) and given != info.get("id"):
            return json_text(400, "Failed to validate scheduler::Call: "
                                  "'framework_id' differs from 'subscribe.framework_info.id'")
        if accepts(request, APPLICATION_JSON) is False:
            return json_text(406, f"Expecting 'Accept' to allow '{APPLICATION_PROTOBUF}' or '{APPLICATION_JSON}'")
        if request.header("Mesos-Stream-Id") is not None:
            return json_text(400, "Subscribe calls should not include the 'Mesos-Stream-Id' header")
        stream_id = str(uuid.uuid4())
        stream = Stream(APPLICATION_JSON, (("Mesos-Stream-Id", stream_id),))
        framework_stream = FrameworkStream(stream, stream_id)
        framework = self.cluster.subscribe(info, framework_stream, self.master_info())
        stream.on_close = lambda: self.cluster.disconnected(framework.id)
        return stream
