"""The asynchronous jobs of ECS and IMS (``GET .../v1/{project_id}/jobs/{job_id}``), polled to their end.

Both services answer with the same shape: ``status`` INIT/RUNNING → SUCCESS or FAIL, the reason in
``fail_reason`` (or only ``error_code``), and per server a sub-job whose own ``fail_reason`` is the more precise
one. The provisioner's runner and the image builder both wait through here.
"""

from __future__ import annotations

from typing import Any

from provision_min.errors import ResourceFailed
from provision_min.otc import OtcClient
from provision_min.wait import Poller, Progress

JOB_DONE, JOB_FAILED = "SUCCESS", "FAIL"


def failure_reason(job: dict[str, Any]) -> str:
    """The most precise reason a failed job gives: a sub-job's, else the job's, else its error code."""
    reason = str(job.get("fail_reason") or job.get("error_code") or "no reason given")
    for sub in (job.get("entities") or {}).get("sub_jobs") or []:
        reason = str((sub or {}).get("fail_reason") or reason)
    return reason


def wait_job(client: OtcClient, poller: Poller, service: str, job_id: str, name: str,
             timeout: float) -> dict[str, Any]:
    """The finished job (``service`` is ``ecs`` or ``ims_jobs``); ``ResourceFailed`` saying "{name} failed:
    {reason}" when it failed, ``WaitTimeout`` naming it when it takes longer than ``timeout`` seconds."""

    def probe() -> Progress[dict[str, Any]]:
        job = client.get(service, f"/jobs/{job_id}")
        job = job if isinstance(job, dict) else {}
        status = str(job.get("status", "unknown"))
        if status == JOB_FAILED:
            raise ResourceFailed(f"{name} failed: {failure_reason(job)}")
        return Progress(status == JOB_DONE, status, job)

    return poller.until(name, probe, timeout) or {}
