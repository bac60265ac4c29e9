"""An agent: its RAM folders, Docker, the Mesos agent, the Alluxio worker and proxy, the Spark client and
Spark's shuffle service, in start order (a folder is mounted before anything that uses it)."""

from __future__ import annotations

import json

from bootstrap_agent.desired import DesiredService, text_file
from bootstrap_agent.facts import Facts
from bootstrap_agent.layout import Layout
from bootstrap_agent.node_paths import (
    ALLUXIO_TIER0,
    DOCKER_DAEMON_JSON,
    DOCKER_DATA_ROOT,
    DOCKER_SOCKET,
    MESOS_AGENT_ENV,
    MESOS_WORK_DIR,
    SPARK_SHUFFLE_ENV,
)
from bootstrap_agent.plan.alluxio import alluxio_worker
from bootstrap_agent.plan.common import mesos_env, mesos_url, spark_client, zk_url
from bootstrap_agent.plan.drain import drain_stop_timeout
from bootstrap_agent.plan.memory import SPARK_SHUFFLE_HEAP, agent_memory
from bootstrap_agent.plan.mounts import mount
from bootstrap_agent.plan.part import Part
from bootstrap_agent.ports import MESOS_AGENT_PORT
from bootstrap_agent.schema import Settings
from bootstrap_agent.sizes import MiB
from bootstrap_agent.spark import SPARK_DEFAULTS, SPARK_ENV_SH, shuffle_environment, spark_node
from bootstrap_agent.templates import render


def agent(settings: Settings, facts: Facts, layout: Layout) -> Part:
    memory = agent_memory(settings, facts)
    work_mount = mount(MESOS_WORK_DIR, memory.work_dir, layout)
    docker_mount = mount(DOCKER_DATA_ROOT, memory.docker, layout)
    tier0_mount = mount(ALLUXIO_TIER0, memory.ramdisk, layout)
    part = work_mount + docker_mount + tier0_mount

    mesos = settings.mesos
    flags = {
        "master": zk_url(settings.masters),
        "work_dir": layout.path(MESOS_WORK_DIR),
        "log_dir": layout.path("/var/log/mesos"),
        "ip": facts.ip,
        "hostname": facts.ip,
        "port": str(MESOS_AGENT_PORT),
        "containerizers": ",".join(mesos.containerizers),
        "resources": f"cpus:{facts.cpus};mem:{memory.mesos // MiB}",
    }
    if mesos.attributes:
        flags["attributes"] = ";".join(f"{k}:{v}" for k, v in mesos.attributes)
    if mesos.docker:
        # Pulling an image easily takes longer than Mesos' default of one minute (the original used 5mins), and
        # finished containers go after 5 minutes rather than Mesos' 6 hours: with Docker's data in RAM that
        # matters. Both may be overridden in mesos.agent_flags; the socket is the one our dockerd listens on.
        flags["executor_registration_timeout"] = "5mins"
        flags["docker_remove_delay"] = "5mins"
        flags["docker_socket"] = layout.path(DOCKER_SOCKET)
        part += _docker(layout, docker_mount.units)
    flags.update(mesos.agent_flags)
    part += Part((mesos_env(MESOS_AGENT_ENV, "mesos-agent", settings, flags),), (DesiredService(
        "mesos-agent", (MESOS_AGENT_ENV,), ((facts.ip, MESOS_AGENT_PORT),), mesos.version,
        requires=work_mount.units,
    ),))

    if settings.alluxio is not None:
        part += alluxio_worker(settings, facts, layout, memory.ramdisk, tier0_mount.units)
    part += spark_client(settings, facts, layout)
    if settings.spark.shuffle_service:
        part += _shuffle_service(settings, facts, layout, work_mount.units)
    return part + drain_stop_timeout(settings)


def _docker(layout: Layout, requires: tuple[str, ...]) -> Part:
    daemon_json = text_file(DOCKER_DAEMON_JSON, json.dumps({
        # live-restore: a restart of dockerd (a changed daemon.json) leaves the running containers alone.
        "data-root": layout.path(DOCKER_DATA_ROOT),
        "live-restore": True,
        "log-driver": "json-file",
        "log-opts": {"max-size": "50m", "max-file": "3"},
    }, indent=2, sort_keys=True) + "\n")
    return Part((daemon_json,), (DesiredService("docker", (DOCKER_DAEMON_JSON,), (), requires=requires,
                                                sockets=(layout.path(DOCKER_SOCKET),)),))


def _shuffle_service(settings: Settings, facts: Facts, layout: Layout, requires: tuple[str, ...]) -> Part:
    """Spark's MesosExternalShuffleService (bootstrap_agent/spark.py); its files live in the work_dir."""
    port = settings.spark.shuffle_port
    node = spark_node(settings, facts, layout.path, mesos_url(settings.masters))
    env = text_file(SPARK_SHUFFLE_ENV, render(
        "env.j2", cluster=settings.cluster, program="the Spark external shuffle service",
        variables=shuffle_environment(node, SPARK_SHUFFLE_HEAP // MiB),
    ))
    inputs = (SPARK_SHUFFLE_ENV, SPARK_DEFAULTS, SPARK_ENV_SH)
    return Part((env,), (DesiredService("spark-shuffle", inputs, ((facts.ip, port),), requires=requires),))
