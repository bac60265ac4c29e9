"""Where the samples come from: the leading Mesos master over HTTP, Alluxio's master optionally, and the agents'
member znodes (the group's instance ids are the nodes' uuids).

Only the leading Mesos master answers the cluster's metrics (a standby's ``/metrics/snapshot`` says
``master/elected`` 0 and little else), so every sample asks the masters in turn and uses the one that leads;
a sample fails (``OSError``/``ValueError``, one line) when none does, and the scaler decides on the window it
has. ``/master/state``'s frameworks give the starving ones: Mesos 1.11 reports ``used_resources`` and
``offered_resources`` per framework (``src/master/http.cpp``, the ``FullFrameworkWriter``), and a framework
without them is judged by its running tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import requests

from bootstrap_agent.member import Member
from bootstrap_agent.scaler.decide import InstanceView
from bootstrap_agent.scaler.signals import Sample, sample_from, starved_frameworks

HOLDING_TASKS = frozenset({"TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING"})


def with_tasks(state: Mapping[str, Any]) -> dict[str, Any]:
    """``/master/state`` frameworks, each given ``used_resources`` from its live tasks when Mesos left it out."""
    frameworks = []
    for framework in state.get("frameworks", []) or []:
        if not isinstance(framework, Mapping):
            continue
        item = dict(framework)
        if "used_resources" not in item:
            tasks = item.get("tasks", []) or []
            live = [t.get("resources") or {} for t in tasks
                    if isinstance(t, Mapping) and t.get("state") in HOLDING_TASKS]
            item["used_resources"] = {key: sum(float(r.get(key, 0) or 0) for r in live) for key in ("cpus", "mem")}
        frameworks.append(item)
    return {"frameworks": frameworks}


def capacity_from_master_info(info: Mapping[str, Any]) -> tuple[int, int] | None:
    """Alluxio master's ``/api/v1/master/info`` → (used, total) bytes of the workers' storage, None if absent."""
    capacity = info.get("capacity")
    if not isinstance(capacity, Mapping):
        return None
    used, total = capacity.get("used"), capacity.get("total")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (used, total)):
        return None
    return int(used), int(total)  # type: ignore[arg-type]


class MesosSignals:
    """``sample(now)`` from the leading one of ``masters`` (``host:port``); ``alluxio``: the Alluxio masters'
    info URLs, the first that answers counts (only the primary does)."""

    def __init__(self, masters: Sequence[str], *, alluxio: Sequence[str] = (), timeout: float = 3.0,
                 session: requests.Session | None = None) -> None:
        self.masters = list(masters)
        self.alluxio = list(alluxio)
        self.timeout = timeout
        self.http = session or requests.Session()

    def _get(self, url: str) -> Any:
        answer = self.http.get(url, timeout=self.timeout, allow_redirects=False)
        if answer.status_code != 200:
            raise OSError(f"{url}: HTTP {answer.status_code}")
        return answer.json()

    def leader(self) -> str:
        for address in self.masters:
            try:
                metrics = self._get(f"http://{address}/metrics/snapshot")
            except (OSError, ValueError):
                continue
            if isinstance(metrics, dict) and metrics.get("master/elected") == 1:
                return address
        raise OSError(f"no leading Mesos master among {', '.join(self.masters)}")

    def __call__(self, now: float) -> Sample:
        leader = self.leader()
        metrics = self._get(f"http://{leader}/metrics/snapshot")
        state = self._get(f"http://{leader}/master/state")
        if not isinstance(metrics, dict) or not isinstance(state, dict):
            raise ValueError(f"{leader}: the metrics or the state is not a JSON object")
        capacity = None
        for url in self.alluxio:  # Alluxio away: that signal is missing, the others still count
            try:
                info = self._get(url)
            except (OSError, ValueError):
                continue
            capacity = capacity_from_master_info(info) if isinstance(info, dict) else None
            if capacity is not None:
                break
        return sample_from(metrics, now, starved=starved_frameworks(with_tasks(state)), alluxio=capacity)


def agents_from_members(members: Iterable[Member]) -> dict[str, InstanceView]:
    """The agents' member znodes by uuid (= the group's instance id): ready, draining, how busy."""
    views = {}
    for m in members:
        if m.role != "agent":
            continue
        load = m.load
        views[m.uuid] = InstanceView(
            m.uuid, ready=m.state == "ready", removing=m.state == "draining" or m.drain is not None,
            tasks=load.tasks if load is not None else None, cache_bytes=load.cache_bytes if load is not None else 0,
            unpersisted_bytes=load.unpersisted_bytes if load is not None else None)
    return views


def member_source(read: Callable[[], list[Member]]) -> Callable[[], dict[str, InstanceView]]:
    """``Scaler(agents=...)`` from the store's ``members()``."""
    return lambda: agents_from_members(read())


def agents_from_fields(members: Iterable[Mapping[str, Any]]) -> dict[str, InstanceView]:
    """The same from a master's member view (``zk.member_cache``: the znodes' fields, validated when read), so
    the scaler on a master reads no member znode the daemon's pass has not read already."""
    views = {}
    for m in members:
        if m.get("role") != "agent" or not isinstance(m.get("uuid"), str):
            continue
        load = m.get("load") if isinstance(m.get("load"), Mapping) else None
        tasks = load.get("tasks") if load is not None else None
        unpersisted = load.get("unpersisted_bytes") if load is not None else None
        views[m["uuid"]] = InstanceView(
            m["uuid"], ready=m.get("state") == "ready",
            removing=m.get("state") == "draining" or isinstance(m.get("drain"), Mapping),
            tasks=tasks if isinstance(tasks, int) else None,
            cache_bytes=int(load.get("cache_bytes") or 0) if load is not None else 0,
            unpersisted_bytes=unpersisted if isinstance(unpersisted, int) else None)
    return views
