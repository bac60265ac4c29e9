"""The ``mesos`` section: version, containerizers, attributes, extra flags checked against the version's own
flag list (names and the kind of value each takes), and the RAM folders."""

from __future__ import annotations

import re
from typing import Any

from bootstrap_agent import names
from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.schema.mesos_values import check_flag_value
from bootstrap_agent.schema.ramdisk import OFF, parse_ramdisk
from bootstrap_agent.schema.readers import kind, read_choice, read_object, read_scalar
from bootstrap_agent.schema.settings import MesosSettings

MESOS_KEYS = frozenset({
    "version", "containerizers", "attributes", "agent_flags", "master_flags", "work_dir_ramdisk", "docker_ramdisk",
})
ATTRIBUTE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
CONTAINERIZERS = ("mesos", "docker")

# Flags the agent derives itself: letting user-data override them would silently break the cluster.
MANAGED_AGENT_FLAGS = frozenset(
    {"master", "work_dir", "ip", "hostname", "port", "resources", "attributes", "containerizers", "log_dir"}
)
MANAGED_MASTER_FLAGS = frozenset({"zk", "quorum", "work_dir", "cluster", "ip", "hostname", "port", "log_dir"})


def parse_mesos(value: Any) -> MesosSettings:
    obj = read_object(value, "mesos", MESOS_KEYS)
    version = read_choice(obj.get("version", MesosSettings.version), "mesos.version", names.MESOS_VERSIONS)
    containerizers: tuple[str, ...] = MesosSettings.containerizers
    if "containerizers" in obj:
        raw = obj["containerizers"]
        if not isinstance(raw, list) or not raw:
            raise InvalidInput("mesos.containerizers", f"expected a non-empty list, got {kind(raw)}")
        items = [
            read_choice(item, f"mesos.containerizers[{i}]", CONTAINERIZERS) for i, item in enumerate(raw)
        ]
        if len(set(items)) != len(items):
            raise InvalidInput("mesos.containerizers", "lists a containerizer twice")
        containerizers = tuple(items)
    attributes = tuple(_attributes(obj.get("attributes", {})))
    agent_flags = _flags(obj.get("agent_flags", {}), "mesos.agent_flags", version, "agent", MANAGED_AGENT_FLAGS)
    master_flags = _flags(
        obj.get("master_flags", {}), "mesos.master_flags", version, "master", MANAGED_MASTER_FLAGS
    )
    work_dir_ramdisk = parse_ramdisk(obj.get("work_dir_ramdisk", "off"), "mesos.work_dir_ramdisk", can_be_off=True)
    docker_ramdisk = parse_ramdisk(obj.get("docker_ramdisk", "off"), "mesos.docker_ramdisk", can_be_off=True)
    if docker_ramdisk is not OFF and "docker" not in containerizers:
        raise InvalidInput("mesos.docker_ramdisk", "Docker runs only with the docker containerizer "
                           "(mesos.containerizers); without it there is no Docker data to put in RAM")
    return MesosSettings(version, containerizers, attributes, agent_flags, master_flags, work_dir_ramdisk,
                         docker_ramdisk)


def _attributes(value: Any) -> list[tuple[str, str]]:
    obj = read_object(value, "mesos.attributes", None)
    result = []
    for key, raw in obj.items():
        path = f"mesos.attributes.{key}"
        if not ATTRIBUTE_NAME.match(key):
            raise InvalidInput(path, "attribute names are 1-64 characters of A-Z, a-z, 0-9, '_', '.', '-'")
        text = read_scalar(raw, path)
        if ";" in text or not text.strip():
            raise InvalidInput(path, f"{text!r} must be non-empty and must not contain ';' (attribute separator)")
        result.append((key, text))
    return result


def _flags(
    value: Any, path: str, version: str, role: names.MesosRole, managed: frozenset[str]
) -> tuple[tuple[str, str], ...]:
    obj = read_object(value, path, None)
    known = names.mesos_flag_types(version, role)
    result = []
    for name, raw in obj.items():
        flag_path = f"{path}.{name}"
        if name in managed:
            raise InvalidInput(flag_path, f"--{name} is set by bootstrap-agent itself and cannot be overridden")
        if name not in known:
            binary = "mesos-agent" if role == "agent" else "mesos-master"
            raise InvalidInput(flag_path, f"{binary} {version} has no flag --{name}")
        text = read_scalar(raw, flag_path)
        check_flag_value(text, known[name], flag_path)
        result.append((name, text))
    return tuple(sorted(result))
