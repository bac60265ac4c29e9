"""A master: ZooKeeper, the Mesos master, the Alluxio master and proxy, the Spark client, the optional tools
and the dashboards, in start order."""

from __future__ import annotations

from bootstrap_agent.desired import DesiredService, Peers, text_file
from bootstrap_agent.facts import Facts
from bootstrap_agent.layout import Layout
from bootstrap_agent.node_paths import MESOS_MASTER_ENV, ZOO_CFG, ZOO_DATA_DIR, ZOO_MYID
from bootstrap_agent.plan.alluxio import alluxio_master
from bootstrap_agent.plan.common import mesos_env, spark_client, zk_url
from bootstrap_agent.plan.dashboard import dashboard
from bootstrap_agent.plan.part import Part
from bootstrap_agent.plan.tools import tools
from bootstrap_agent.ports import MESOS_MASTER_PORT, ZK_CLIENT_PORT
from bootstrap_agent.schema import Settings
from bootstrap_agent.templates import render


def master(settings: Settings, facts: Facts, peers: Peers, layout: Layout) -> Part:
    part = _zookeeper(settings, facts, layout) + _mesos_master(settings, facts, layout)
    if settings.alluxio is not None:
        part += alluxio_master(settings, facts, layout)
    part += spark_client(settings, facts, layout)  # spark-shell/spark-submit on the masters
    tool_part, links = tools(settings, layout)
    return part + tool_part + dashboard(settings, facts, peers, layout, links)


def _zookeeper(settings: Settings, facts: Facts, layout: Layout) -> Part:
    masters = settings.masters
    zoo_cfg = text_file(ZOO_CFG, render(
        "zoo.cfg.j2",
        cluster=settings.cluster,
        data_dir=layout.path(ZOO_DATA_DIR),
        servers=[{"id": i + 1, "ip": ip} for i, ip in enumerate(masters)],
    ))
    myid = text_file(ZOO_MYID, f"{masters.index(facts.ip) + 1}\n")
    return Part((zoo_cfg, myid), (DesiredService("zookeeper", (ZOO_CFG, ZOO_MYID), ((facts.ip, ZK_CLIENT_PORT),)),))


def _mesos_master(settings: Settings, facts: Facts, layout: Layout) -> Part:
    masters = settings.masters
    flags = {
        "zk": zk_url(masters),
        "quorum": str(len(masters) // 2 + 1),
        "work_dir": layout.path("/var/lib/mesos"),
        "log_dir": layout.path("/var/log/mesos"),
        "cluster": settings.cluster,
        "ip": facts.ip,
        "hostname": facts.ip,
        "port": str(MESOS_MASTER_PORT),
    }
    flags.update(settings.mesos.master_flags)
    return Part((mesos_env(MESOS_MASTER_ENV, "mesos-master", settings, flags),), (DesiredService(
        "mesos-master", (MESOS_MASTER_ENV,), ((facts.ip, MESOS_MASTER_PORT),), settings.mesos.version
    ),))
