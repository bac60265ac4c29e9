"""The stand-ins' entries in the process manager's command table (``bootstrap_agent.services.commands``).

Each builder mirrors the ``ExecStart=``/``EnvironmentFile=`` of the unit as the stand-in image installs it
(the units in ``systemd/`` with the drop-ins of ``systemd/standins/``), with this interpreter instead of the
image's venv. Registered as the ``bootstrap_agent.process_commands`` entry point ``standins``.
"""

from __future__ import annotations

import sys

from bootstrap_agent.desired import DesiredService
from bootstrap_agent.layout import Layout
from bootstrap_agent.node_paths import (
    ALLUXIO_ENV,
    ALLUXIO_JOURNAL_FORMAT,
    ALLUXIO_SITE,
    DOCKER_DAEMON_JSON,
    DOCKER_SOCKET,
    JENKINS_ENV,
    MESOS_AGENT_ENV,
    MESOS_MASTER_ENV,
    SPARK_SHUFFLE_ENV,
    ZEPPELIN_ENV,
)
from bootstrap_agent.services.commands import Command, CommandBuilder
from bootstrap_agent.spark import SHUFFLE_CLASS

ALLUXIO_UNITS = ("alluxio-master", "alluxio-worker", "alluxio-proxy", "alluxio-job-master", "alluxio-job-worker",
                 ALLUXIO_JOURNAL_FORMAT)
TOOL_ENV = {"zeppelin": ZEPPELIN_ENV, "jenkins": JENKINS_ENV}


def _python(module: str) -> list[str]:
    return [sys.executable, "-m", f"standins.{module}"]


def mesos(service: DesiredService, layout: Layout) -> Command:
    role = service.unit.split("-", 1)[1]
    env = MESOS_MASTER_ENV if role == "master" else MESOS_AGENT_ENV
    argv = [*_python("mesos"), role, "--mesos-version", str(service.version)]
    # No systemd runs the processes here: an agent with systemd support (its default wherever /sbin/init is
    # systemd) would exit for want of /run/systemd/system (apache/mesos src/linux/systemd.cpp). Only here; on
    # systemd nodes the unit runs the agent with its default, which keeps executors alive.
    return argv + (["--systemd_enable_support=false"] if role == "agent" else []), [env]


def alluxio(service: DesiredService, layout: Layout) -> Command:
    # alluxio-job-master → the stand-in's job_master (bin/launch-process job_master)
    role = "formatJournal" if service.unit == ALLUXIO_JOURNAL_FORMAT else service.unit[8:].replace("-", "_")
    argv = [*_python("alluxio"), role, "--alluxio-version", str(service.version), "--conf", layout.path(ALLUXIO_SITE)]
    return argv, [ALLUXIO_ENV]


def docker(service: DesiredService, layout: Layout) -> Command:
    return [*_python("tools"), "docker", "--config-file", layout.path(DOCKER_DAEMON_JSON),
            "-H", "unix://" + layout.path(DOCKER_SOCKET)], []


def spark_shuffle(service: DesiredService, layout: Layout) -> Command:
    """The unit's ExecStart, with the stand-in for /opt/spark/bin/spark-class."""
    return [*_python("tools"), "spark-class", SHUFFLE_CLASS], [SPARK_SHUFFLE_ENV]


def tool(service: DesiredService, layout: Layout) -> Command:
    return [*_python("tools"), service.unit], [TOOL_ENV[service.unit]]


def table() -> dict[str, CommandBuilder]:
    """Unit name → command, for every unit a stand-in runs."""
    return {
        "mesos-master": mesos, "mesos-agent": mesos,
        **dict.fromkeys(ALLUXIO_UNITS, alluxio),
        "docker": docker, "spark-shuffle": spark_shuffle,
        **dict.fromkeys(TOOL_ENV, tool),
    }
