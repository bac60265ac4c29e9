"""Pieces both roles share: the Mesos URLs, a Mesos EnvironmentFile, the Spark client's files, /etc/hosts."""

from __future__ import annotations

from collections.abc import Iterable

from bootstrap_agent.desired import DesiredFile, text_file
from bootstrap_agent.facts import Facts
from bootstrap_agent.layout import Layout
from bootstrap_agent.node_paths import ETC_HOSTS
from bootstrap_agent.plan.part import Part
from bootstrap_agent.ports import ZK_CLIENT_PORT
from bootstrap_agent.schema import Settings
from bootstrap_agent.spark import spark_files
from bootstrap_agent.templates import render


def zk_url(masters: Iterable[str]) -> str:
    return "zk://" + ",".join(f"{ip}:{ZK_CLIENT_PORT}" for ip in masters) + "/mesos"


def mesos_url(masters: Iterable[str]) -> str:
    """The Mesos master URL as Spark and Zeppelin take it: the ZooKeeper URL behind ``mesos://``."""
    return zk_url(masters).replace("zk://", "mesos://zk://", 1)


def mesos_env(path: str, program: str, settings: Settings, flags: dict[str, str]) -> DesiredFile:
    return text_file(path, render(
        "mesos.env.j2", cluster=settings.cluster, program=program, version=settings.mesos.version,
        flags=sorted(flags.items()),
    ))


def spark_client(settings: Settings, facts: Facts, layout: Layout) -> Part:
    """``spark-defaults.conf``, ``spark-env.sh`` and the root-only S3 profile: every node (bootstrap_agent/spark.py)."""
    return Part(tuple(
        text_file(spark_file.path, spark_file.text, mode=spark_file.mode, secret=spark_file.secret)
        for spark_file in spark_files(settings, facts, layout.path, mesos_url(settings.masters))
    ))


def hosts(facts: Facts) -> DesiredFile:
    return text_file(ETC_HOSTS, render("hosts.j2", ip=facts.ip, hostname=facts.hostname))
