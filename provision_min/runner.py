"""Carry out planned steps: fill in ids, make the call, remember what it created, wait for readiness.

Each asynchronous resource has a waiter that knows its states from the API reference (VPC ``CREATING`` →
``OK``; subnet ``UNKNOWN`` → ``ACTIVE``; ECS job ``INIT``/``RUNNING`` → ``SUCCESS`` or ``FAIL`` with a
reason; server → ``ACTIVE``; EIP ``PENDING_CREATE`` → ``DOWN`` → ``ACTIVE``; AS group ``PAUSED`` →
``INSERVICE``) and fails fast on the error states instead of waiting out the timeout.

A failure stops the run where it is. Nothing is rolled back: everything is found by name, so the next ``up``
continues from there and ``down`` removes whatever exists.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bootstrap_agent import logs
from provision_min import userdata
from provision_min.errors import ApiError, ProvisionError, ResourceFailed
from provision_min.jobs import wait_job
from provision_min.otc import OtcClient
from provision_min.plan import Call, Ref, Step, UserData, Wait, render_path
from provision_min.wait import Poller, Progress

# Default wait limits in seconds, per waiter (``--wait-timeout`` overrides all of them).
TIMEOUTS: dict[str, float] = {
    "vpc_ok": 180, "subnet_active": 300, "ecs_job": 1200, "server_active": 900, "eip_ready": 180,
    "eip_bound": 180, "group_settled": 300, "group_inservice": 300, "group_gone": 900, "instances_gone": 1200,
    "subnet_gone": 300, "in_use": 120,
}
IN_USE_STATUS = frozenset({400, 409})
REQUIRED_IDS = frozenset({"vpc", "subnet", "eip", "as_config", "as_group"})


class Runner:
    def __init__(self, client: OtcClient, poller: Poller, ids: dict[str, Any]) -> None:
        self.client = client
        self.poller = poller
        self.ids = ids
        self.waiters: dict[str, Callable[[str, str], None]] = {
            "vpc_ok": self._vpc_ok,
            "subnet_active": self._subnet_active,
            "ecs_job": self._ecs_job,
            "server_active": self._server_active,
            "eip_ready": self._eip_ready,
            "eip_bound": self._eip_bound,
            "group_settled": self._group_settled,
            "group_inservice": self._group_inservice,
            "group_gone": self._group_gone,
            "instances_gone": self._instances_gone,
            "subnet_gone": self._subnet_gone,
        }

    def run(self, steps: list[Step]) -> None:
        for step in steps:
            if isinstance(step, Wait):
                self.waiters[step.waiter](step.ref, step.resource)
            else:
                self.call(step)

    # --- calls ----------------------------------------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        """The body as sent: refs replaced by ids, user-data base64-encoded."""
        if isinstance(value, Ref):
            return self._id(value.key)
        if isinstance(value, UserData):
            return userdata.to_base64(value.document)
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.resolve(v) for v in value]
        return value

    def _id(self, key: str) -> Any:
        value = self.ids.get(key)
        if value in (None, ""):
            raise ProvisionError(f"internal error: the id of {key} is not known at this step")
        return value

    def call(self, call: Call) -> None:
        log = logs.get("provision-min")
        if call.only_if is not None and self.ids.get(call.only_if[0]) != call.only_if[1]:
            log.info("step_skipped", step=call.event, resource=call.resource,
                     reason=f"{call.only_if[0]} is {self.ids.get(call.only_if[0])}")
            return
        for part in call.path:
            if isinstance(part, Ref):
                self._id(part.key)
        path = render_path(call, self.ids)
        body = self.resolve(call.body) if call.body is not None else None
        answer: Any
        if call.method == "DELETE":
            gone = self._delete(call, path)
            log.info(call.event if not gone else "resource_already_gone", resource=call.resource)
        else:
            answer = self.client.request(call.method, call.service, path, body=body, params=call.params)
            for key, extract in call.produces:
                value = extract(answer)
                if value not in (None, ""):
                    self.ids[key] = value
            produced = {key: self.ids.get(key) for key, _ in call.produces}
            log.info(call.event, resource=call.resource, **produced)
            for key, _ in call.produces:
                required = key in REQUIRED_IDS or key.startswith(("sg:", "job:", "deljob:", "port:"))
                if required and self.ids.get(key) in (None, ""):
                    where = f"{call.method} {self.client.url(call.service, path)}"
                    raise ApiError(200, "", f"the answer has no {key} id", where)
        if call.wait is not None and call.wait_ref is not None:
            self.waiters[call.wait](call.wait_ref, call.resource)

    def _delete(self, call: Call, path: str) -> bool:
        """Delete; True when it was already gone. A resource still in use (the cloud lags behind a deletion
        it reported done) is asked again for a while before the error counts."""
        last_error: list[ApiError | None] = [None]

        def attempt() -> Progress[bool]:
            try:
                return Progress(True, "deleted", not self.client.delete(call.service, path, call.params))
            except ApiError as exc:
                if exc.status in IN_USE_STATUS:
                    last_error[0] = exc
                    return Progress(False, f"in use ({exc.code or exc.status})")
                raise

        try:
            already_gone = self.poller.until(f"{call.resource} to be deletable", attempt, TIMEOUTS["in_use"])
        except ProvisionError:
            if last_error[0] is not None:
                raise last_error[0] from None
            raise
        return bool(already_gone)

    # --- waiters --------------------------------------------------------------------------------------------

    def _status_wait(self, ref: str, resource: str, waiter: str, service: str, path: str, key: str,
                     ready: set[str], failed: set[str]) -> dict[str, Any]:
        def probe() -> Progress[dict[str, Any]]:
            answer = self.client.get(service, path)
            item = answer.get(key) if isinstance(answer, dict) else None
            item = item if isinstance(item, dict) else {}
            status = str(item.get("status", "unknown"))
            if status in failed:
                raise ResourceFailed(f"{resource} is in {status}" + _reason(item))
            return Progress(status in ready, status, item)

        started = self.poller.clock()
        item = self.poller.until(resource, probe, TIMEOUTS[waiter])
        logs.get("provision-min").info("resource_ready", resource=resource, s=round(self.poller.clock() - started, 1))
        return item or {}

    def _vpc_ok(self, ref: str, resource: str) -> None:
        self._status_wait(ref, resource, "vpc_ok", "vpc", f"/vpcs/{self._id(ref)}", "vpc", {"OK"}, {"ERROR"})

    def _subnet_active(self, ref: str, resource: str) -> None:
        self._status_wait(ref, resource, "subnet_active", "vpc", f"/subnets/{self._id(ref)}", "subnet", {"ACTIVE"},
                          {"ERROR"})

    def _server_active(self, ref: str, resource: str) -> None:
        self._status_wait(ref, resource, "server_active", "ecs", f"/cloudservers/{self._id(ref)}", "server",
                          {"ACTIVE"}, {"ERROR"})

    def _eip_ready(self, ref: str, resource: str) -> None:
        item = self._status_wait(ref, resource, "eip_ready", "vpc", f"/publicips/{self._id(ref)}", "publicip",
                                 {"DOWN", "ACTIVE"}, {"ERROR", "BIND_ERROR"})
        if item.get("public_ip_address"):
            self.ids["eip_address"] = item["public_ip_address"]

    def _eip_bound(self, ref: str, resource: str) -> None:
        item = self._status_wait(ref, resource, "eip_bound", "vpc", f"/publicips/{self._id(ref)}", "publicip",
                                 {"ACTIVE"}, {"ERROR", "BIND_ERROR"})
        if item.get("public_ip_address"):
            self.ids["eip_address"] = item["public_ip_address"]

    def _ecs_job(self, ref: str, resource: str) -> None:
        """Poll an ECS job; for a creation, the server id comes from the job when the answer lacked it."""
        job_id = self._id(ref)
        job = wait_job(self.client, self.poller, "ecs", job_id, f"ECS job {job_id} for {resource}",
                       TIMEOUTS["ecs_job"])
        if ref.startswith("job:"):
            server_key = "server:" + ref.removeprefix("job:")
            if not self.ids.get(server_key):
                sub_jobs = (job.get("entities") or {}).get("sub_jobs") or []
                for sub in sub_jobs:
                    server_id = ((sub or {}).get("entities") or {}).get("server_id")
                    if server_id:
                        self.ids[server_key] = server_id
                        break
        logs.get("provision-min").info("job_succeeded", resource=resource, job_id=job_id)

    def _group(self, ref: str) -> dict[str, Any] | None:
        answer = self.client.get_or_none("as", f"/scaling_group/{self._id(ref)}")
        group = answer.get("scaling_group") if isinstance(answer, dict) else None
        return group if isinstance(group, dict) else None

    def _group_settled(self, ref: str, resource: str) -> None:
        def probe() -> Progress[str]:
            group = self._group(ref) or {}
            status = str(group.get("scaling_group_status", "unknown"))
            if status == "ERROR":
                raise ResourceFailed(f"{resource} is in ERROR")
            return Progress(status in ("INSERVICE", "PAUSED"), status, status)

        self.ids["as_group_status"] = self.poller.until(resource, probe, TIMEOUTS["group_settled"])

    def _group_inservice(self, ref: str, resource: str) -> None:
        def probe() -> Progress[str]:
            group = self._group(ref) or {}
            status = str(group.get("scaling_group_status", "unknown"))
            if status == "ERROR":
                raise ResourceFailed(f"{resource} is in ERROR")
            return Progress(status == "INSERVICE", status, status)

        self.ids["as_group_status"] = self.poller.until(f"{resource} to be in service", probe,
                                                        TIMEOUTS["group_inservice"])

    def _group_gone(self, ref: str, resource: str) -> None:
        def probe() -> Progress[bool]:
            group = self._group(ref)
            if group is None:
                return Progress(True, "gone", True)
            return Progress(False, str(group.get("scaling_group_status", "present")))

        self.poller.until(f"{resource} to be gone", probe, TIMEOUTS["group_gone"])
        logs.get("provision-min").info("resource_gone", resource=resource)

    def _instances_gone(self, ref: str, resource: str) -> None:
        remaining = [str(i) for i in self.ids.get(ref) or []]

        def probe() -> Progress[bool]:
            still = []
            for instance_id in remaining:
                answer = self.client.get_or_none("ecs", f"/cloudservers/{instance_id}")
                server = answer.get("server") if isinstance(answer, dict) else None
                if isinstance(server, dict) and server.get("status") != "DELETED":
                    still.append(instance_id)
            remaining[:] = still
            return Progress(not still, f"{len(still)} left", True)

        if remaining:
            count = len(remaining)
            self.poller.until(resource + " to be gone", probe, TIMEOUTS["instances_gone"])
            logs.get("provision-min").info("resource_gone", resource=resource, count=count)

    def _subnet_gone(self, ref: str, resource: str) -> None:
        def probe() -> Progress[bool]:
            answer = self.client.get_or_none("vpc", f"/subnets/{self._id(ref)}")
            if answer is None:
                return Progress(True, "gone", True)
            subnet = answer.get("subnet") if isinstance(answer, dict) else None
            return Progress(False, str((subnet or {}).get("status", "present")))

        self.poller.until(f"{resource} to be gone", probe, TIMEOUTS["subnet_gone"])


def _reason(item: dict[str, Any]) -> str:
    fault = item.get("fault")
    if isinstance(fault, dict) and fault.get("message"):
        return f": {fault['message']}"
    return ""
