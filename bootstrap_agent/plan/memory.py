"""How an agent's memory is split between the system, the RAM disks and Mesos tasks, and the check that the
RAM disks the user-data asks for fit at all."""

from __future__ import annotations

from dataclasses import dataclass

from bootstrap_agent import alluxio_jvm
from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.facts import Facts
from bootstrap_agent.schema import AUTO, OFF, RamDisk, Settings
from bootstrap_agent.sizes import GiB, MiB, format_size

# Memory the node keeps for the OS, the Mesos agent, Docker and the Alluxio worker's JVM: never offered to
# tasks and never put in the RAM disk.
SYSTEM_RESERVE_MIN = 1 * GiB
SYSTEM_RESERVE_FRACTION = 0.10
ALLUXIO_WORKER_JVM = 1 * GiB
MIN_MESOS_TASK_MEMORY = 512 * MiB
SPARK_SHUFFLE_HEAP = 512 * MiB  # SPARK_DAEMON_MEMORY of the shuffle service
DOCKER_DAEMON_MEMORY = 256 * MiB  # dockerd + containerd, without the containers (those are Mesos tasks)
RAMDISK_AUTO_FRACTION = 1 / 3  # Alluxio's tier 0: a third of what is left after the reserve
FOLDER_AUTO_FRACTION = 1 / 8  # Mesos work_dir, Docker data-root: an eighth each
RAMDISK_GRANULE = 256 * MiB


@dataclass(frozen=True)
class Memory:
    """How an agent's memory is split between the system, the RAM disks and Mesos tasks (bytes)."""

    reserved: int
    ramdisk: int  # Alluxio's tier 0
    mesos: int  # offered to tasks
    work_dir: int = 0  # Mesos work_dir in RAM
    docker: int = 0  # Docker data-root in RAM


def ramdisk_size(setting: RamDisk, available: int, fraction: float) -> int:
    """Bytes for one RAM-disk setting: 0 when off, ``fraction`` of ``available`` in granules when auto."""
    if setting is OFF:
        return 0
    if setting == AUTO:
        share = int(available * fraction)
        return max(RAMDISK_GRANULE, share - share % RAMDISK_GRANULE)
    return setting


def agent_memory(settings: Settings, facts: Facts) -> Memory:
    """Split the agent's memory; RAM disks that leave Mesos tasks too little are an input error.

    The rule (docs/node-agent.md, "RAM disks"): the node first keeps a reserve for the OS (max(1 GiB, 10 %)) and the
    heaps of its own daemons (Alluxio worker 1 GiB, proxy 512 MiB, 2.x job worker 384 MiB, Spark shuffle
    service 512 MiB, dockerd 256 MiB, each only
    when it runs). Of the rest, the RAM disks take their sizes (explicit ones as given; ``auto``: Alluxio a
    third, the Mesos work_dir and Docker's data-root an eighth each), and whatever remains is offered to Mesos
    tasks, which must get at least 512 MiB. A tmpfs takes memory only as it fills, but it can fill, so its
    whole size is kept away from the tasks: the sum is checked here, before anything is written, instead of
    being found by the OOM killer.
    """
    reserved = max(SYSTEM_RESERVE_MIN, int(facts.memory * SYSTEM_RESERVE_FRACTION))
    if settings.alluxio is not None:
        reserved += ALLUXIO_WORKER_JVM + alluxio_jvm.ALLUXIO_PROXY_JVM
        if alluxio_jvm.has_job_service(settings.alluxio.version):
            reserved += alluxio_jvm.ALLUXIO_JOB_WORKER_JVM
    if settings.spark.shuffle_service:
        reserved += SPARK_SHUFFLE_HEAP
    if settings.mesos.docker:
        reserved += DOCKER_DAEMON_MEMORY
    available = facts.memory - reserved
    if available < MIN_MESOS_TASK_MEMORY:
        raise InvalidInput(
            "facts.memory", f"{format_size(facts.memory)} leaves no memory for Mesos tasks after the system reserve"
        )

    used = 0
    sizes: dict[str, int] = {}
    wanted: list[tuple[str, RamDisk, float]] = [
        ("alluxio.worker_ramdisk", settings.alluxio.worker_ramdisk if settings.alluxio else OFF,
         RAMDISK_AUTO_FRACTION),
        ("mesos.work_dir_ramdisk", settings.mesos.work_dir_ramdisk, FOLDER_AUTO_FRACTION),
        ("mesos.docker_ramdisk", settings.mesos.docker_ramdisk if settings.mesos.docker else OFF,
         FOLDER_AUTO_FRACTION),
    ]
    for field_path, setting, fraction in wanted:
        sizes[field_path] = ramdisk_size(setting, available, fraction)
        used += sizes[field_path]
        if available - used < MIN_MESOS_TASK_MEMORY:
            others = ", ".join(f"{k} {format_size(v)}" for k, v in sizes.items() if v and k != field_path)
            raise InvalidInput(
                field_path,
                f"{format_size(sizes[field_path])} does not fit: this node has {format_size(facts.memory)}, "
                f"{format_size(reserved)} stay reserved{', ' + others + ' are taken' if others else ''} and "
                f"Mesos tasks need at least {format_size(MIN_MESOS_TASK_MEMORY)}",
            )
    return Memory(reserved, sizes["alluxio.worker_ramdisk"], available - used, sizes["mesos.work_dir_ramdisk"],
                  sizes["mesos.docker_ramdisk"])
