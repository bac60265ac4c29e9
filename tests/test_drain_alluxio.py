"""The drain's Alluxio edge against the stand-ins (a master, two workers on 127.0.0.2/.3, a proxy, the stand-in
installation's ``bin/alluxio``, moto's S3 server; tests/test_standin_alluxio_blocks.py builds them): the files
only this worker holds unpersisted are found, persisted in the background and land in S3 before the drain
goes on; the worker's cached bytes are its own figure; decommissioning says so where the version cannot."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from bootstrap_agent.drain.alluxio_ops import AlluxioOps
from bootstrap_agent.drain.machine import start_drain
from bootstrap_agent.drain.mesos_ops import MesosOps
from bootstrap_agent.drain.record import DrainStore
from bootstrap_agent.drain.runner import Drainer, Edges
from bootstrap_agent.layout import Layout
from bootstrap_agent.state import State
from tests.support.event_log import EventLog
from tests.support.waiting import wait_for
from tests.test_standin_alluxio_blocks import HOSTS, A, B, Cluster, cluster, write

_ = cluster  # the fixture (2.9 and 1.8)


def edge(cluster: Cluster, host: str) -> AlluxioOps:
    return AlluxioOps([str(cluster.home / "bin" / "alluxio")], cluster.version, host,
                      web_port=cluster.workers[host][1])


def test_files_only_here_are_found_persisted_and_in_s3(cluster: Cluster, tmp_path: Path) -> None:
    proxy = cluster.start_proxy(HOSTS[0])
    write(proxy, "/keep/persisted", B, "CACHE_THROUGH")
    write(proxy, "/lose/one", A, "MUST_CACHE")
    write(proxy, "/lose/two", b"two", "MUST_CACHE")
    here, there = edge(cluster, HOSTS[0]), edge(cluster, HOSTS[1])
    assert here.cache_bytes() == cluster.worker_used(HOSTS[0]) >= len(A) + len(B) + 3
    held = here.held_here()
    assert sorted(held.paths) == ["/lose/one", "/lose/two"] and held.bytes == len(A) + 3
    assert there.held_here().paths == ()
    assert here.decommission() and here.decommission_unsupported  # 2.9.3 and 1.8.2 have no decommissionWorker
    if cluster.version != "1.8":
        cluster.start_job_master()  # 2.9 persists through the job service

    log = EventLog()
    drainer = Drainer(DrainStore(State(Layout(str(tmp_path / "node")))), log)
    # The Mesos side is done (the machine is down): the drain is at its blocks.
    drainer.record = dataclasses.replace(start_drain("shutdown", time.time(), 60), phase="blocks",
                                         schedule_requested=True, down_requested=True)
    drainer.edges = Edges(MesosOps(["127.0.0.9"], HOSTS[0], HOSTS[0], master_port=1), here, shuffle=False)
    left: list[str] = []
    first = drainer.advance(lambda: left.append("deregistered"))
    assert first is not None and first.phase == "blocks"  # the listing runs in the background: a pass never waits
    assert first.waiting_for == "the list of unpersisted files on this worker"
    wait_for("the listing seen", lambda: (r := drainer.advance(lambda: left.append("x"))) and r.waiting_for
             == "2 unpersisted file(s) on this worker to be persisted", timeout=30)
    assert ("alluxio_decommission_unsupported", {"version": cluster.version}) in log.events
    record = wait_for("the blocks persisted", lambda: r if (r := drainer.advance(lambda: left.append("x")))
                      and r.finished else None, timeout=60)
    assert record.outcome == "clean" and left == ["x"]
    assert cluster.s3_body("/lose/one") == A and cluster.s3_body("/lose/two") == b"two"
    states = cluster.states()
    assert states["/lose/one"] == states["/lose/two"] == "PERSISTED"
    assert [name for name, _ in log.events].count("drain_persist_started") >= 1
