"""The stand-in master's SUBSCRIBE answer: ``SUBSCRIBED`` is the stream's first event, whenever the allocation
timer fires (apache/mesos 1.11.0 ``docs/scheduler-http-api.md``: "the first event sent by the master when the
scheduler sends a SUBSCRIBE request"; ``Master::_subscribe`` answers before the allocator adds the framework).

A scheduler drops the offers it holds on ``SUBSCRIBED`` (they belong to its previous connection), so an offer
queued ahead of it is one the master keeps outstanding while the framework never sees it: the agent's resources
are then offered to nobody (CI once waited 60 s for an offer of an idle agent that way).
"""

from __future__ import annotations

import json
import queue
import time
from typing import Any

from standins.mesos_cluster import Cluster
from standins.mesos_entities import Agent
from standins.mesos_http import Request, Stream
from standins.mesos_scheduler_api import SchedulerApi

MASTER_INFO = {"id": "m1", "hostname": "m1", "port": 5050, "address": {"ip": "127.0.0.1", "port": 5050}}


class TimerFiresOnRegistration(Cluster):
    """The allocation round runs the moment the framework is registered: the race, made certain."""

    def subscribe(self, *args: Any) -> Any:
        framework = super().subscribe(*args)
        self.allocate(time.time())
        return framework


def _events(stream: Stream) -> list[dict[str, Any]]:
    events = []
    while True:
        try:
            chunk = stream._queue.get_nowait()
        except queue.Empty:
            return events
        if chunk is not None:
            events.append(json.loads(chunk.split(b"\n", 1)[1]))


def _subscribe(api: SchedulerApi, framework_id: str | None = None) -> Stream:
    info: dict[str, Any] = {"user": "root", "name": "job"}
    call: dict[str, Any] = {"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}
    if framework_id is not None:
        info["id"] = call["framework_id"] = {"value": framework_id}
    answer = api.handle(Request("POST", "/api/v1/scheduler", {}, {"content-type": "application/json"},
                                json.dumps(call).encode()))
    assert isinstance(answer, Stream), answer
    return answer


def test_subscribed_comes_before_any_offer_even_when_an_allocation_round_runs_at_once() -> None:
    sent: list[tuple[Agent, str, dict[str, Any]]] = []
    cluster = TimerFiresOnRegistration("m1", lambda agent, path, payload: sent.append((agent, path, payload)),
                                       15.0, 5)
    agent_id = cluster.register_agent({"hostname": "agent-1", "ip": "10.0.0.5", "port": 5051,
                                       "resources": {"cpus": 2.0, "mem": 1024.0}}, [])
    api = SchedulerApi(cluster, lambda: MASTER_INFO)

    events = _events(_subscribe(api))
    assert [e["type"] for e in events] == ["SUBSCRIBED", "OFFERS"], events
    framework_id = events[0]["subscribed"]["framework_id"]["value"]
    assert events[1]["offers"]["offers"][0]["agent_id"] == {"value": agent_id}

    # A re-subscription (the same id, a new connection): the old offer is gone, SUBSCRIBED first again, then
    # the agent offered anew on the new stream.
    again = _events(_subscribe(api, framework_id))
    assert [e["type"] for e in again] == ["SUBSCRIBED", "OFFERS"], again
    assert again[1]["offers"]["offers"][0]["id"] != events[1]["offers"]["offers"][0]["id"]
    assert [o for f in cluster.frameworks.values() for o in f.offers] == [again[1]["offers"]["offers"][0]["id"]
                                                                          ["value"]]
