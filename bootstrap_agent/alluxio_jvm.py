"""The Alluxio processes' JVM sizes and the S3/OBS request-signing properties. Pure, like ``plan()``.

Heaps: without options Alluxio's ``bin/launch-process`` (2.9.3) gives the worker
``-XX:MaxDirectMemorySize=4g`` and the JVM's own default heap (a quarter of the machine), and means to give
the master ``-Xmx8g`` and the worker ``-Xmx4g``: on an agent that is memory the RAM-disk fit check has already
offered to Mesos tasks. So every Alluxio process gets explicit ``-Xms/-Xmx`` and ``-XX:MaxDirectMemorySize``
from the same memory plan that the fit check uses: the worker's and the proxy's sizes are part of an agent's
reserve (``plan.memory.agent_memory``), a master's heap is what ``master_memory`` leaves it.

Signing: the AWS SDK in Alluxio 2.9's S3A under-FS signs with SigV4 for the region named by
``alluxio.underfs.s3.endpoint.region``, else one it parses from the endpoint's host name, which works for
``s3.<region>.amazonaws.com`` but not for OBS (``obs.eu-de.otc.t-systems.com``): the region is rendered from
the endpoint (or ``alluxio.s3_region``). Alluxio 1.8 has no region property (its SDK client takes the region
from the endpoint's host name too), so 1.8 signs with the V2 signer
(``alluxio.underfs.s3a.signer.algorithm=S3SignerType``), which OBS accepts and which carries no region.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.facts import Facts
from bootstrap_agent.schema import AlluxioSettings, Settings
from bootstrap_agent.sizes import GiB, MiB, format_size

# Agents (part of plan.memory.agent_memory's reserve; plan.memory.ALLUXIO_WORKER_JVM is the worker's total).
ALLUXIO_WORKER_HEAP = 512 * MiB
ALLUXIO_WORKER_DIRECT = 512 * MiB  # block reads/writes over the network go through direct buffers
ALLUXIO_PROXY_HEAP = 256 * MiB
ALLUXIO_PROXY_DIRECT = 256 * MiB
ALLUXIO_PROXY_JVM = ALLUXIO_PROXY_HEAP + ALLUXIO_PROXY_DIRECT  # on masters and agents
# 2.x's job service (has_job_service): the job worker copies a file to the under-store through its direct buffers;
# the job master only schedules.
ALLUXIO_JOB_WORKER_HEAP = 256 * MiB
ALLUXIO_JOB_WORKER_DIRECT = 128 * MiB
ALLUXIO_JOB_WORKER_JVM = ALLUXIO_JOB_WORKER_HEAP + ALLUXIO_JOB_WORKER_DIRECT
ALLUXIO_JOB_MASTER_HEAP = 256 * MiB
ALLUXIO_JOB_MASTER_DIRECT = 128 * MiB
ALLUXIO_JOB_MASTER_JVM = ALLUXIO_JOB_MASTER_HEAP + ALLUXIO_JOB_MASTER_DIRECT

# Masters: the OS reserve as on agents, the other daemons, then the Alluxio master's heap from what is left.
MASTER_RESERVE_MIN = 1 * GiB
MASTER_RESERVE_FRACTION = 0.10
ZOOKEEPER_HEAP = 256 * MiB  # zookeeper_cmd.java_command's -Xmx
MESOS_MASTER_MEMORY = 512 * MiB  # a C++ daemon with the cluster's state in memory
ALLUXIO_MASTER_DIRECT = 256 * MiB  # gRPC buffers; the namespace lives on the heap
ALLUXIO_MASTER_HEAP_MAX = 8 * GiB  # launch-process' intended default
ALLUXIO_MASTER_HEAP_MIN = 512 * MiB
ALLUXIO_MASTER_SHARE = 1 / 2  # of what is left: the page cache serves the journal and the under-FS
HEAP_GRANULE = 256 * MiB

# obs.<region>.otc.t-systems.com, also with the bucket in front (virtual-hosted style).
OBS_HOST_RE = re.compile(r"(?:^|\.)obs\.([a-z0-9-]+)\.otc\.t-systems\.com$")
S3_V2_SIGNER = "S3SignerType"


@dataclass(frozen=True)
class MasterMemory:
    reserved: int  # OS + ZooKeeper + Mesos master + the Alluxio proxy
    alluxio_heap: int


def master_memory(settings: Settings, facts: Facts) -> MasterMemory:
    """The Alluxio master's heap: half of what the master's other daemons leave, at most 8 GiB, in 256 MiB
    steps; less than 512 MiB is an input error (the namespace would not fit)."""
    reserved = max(MASTER_RESERVE_MIN, int(facts.memory * MASTER_RESERVE_FRACTION))
    reserved += ZOOKEEPER_HEAP + MESOS_MASTER_MEMORY
    if settings.alluxio is not None:
        reserved += ALLUXIO_PROXY_JVM + ALLUXIO_MASTER_DIRECT
        if has_job_service(settings.alluxio.version):
            reserved += ALLUXIO_JOB_MASTER_JVM
    share = int(max(0, facts.memory - reserved) * ALLUXIO_MASTER_SHARE)
    heap = min(ALLUXIO_MASTER_HEAP_MAX, share - share % HEAP_GRANULE)
    if settings.alluxio is not None and heap < ALLUXIO_MASTER_HEAP_MIN:
        raise InvalidInput(
            "facts.memory",
            f"{format_size(facts.memory)} leaves the Alluxio master less than {format_size(ALLUXIO_MASTER_HEAP_MIN)} "
            f"of heap after {format_size(reserved)} for the OS, ZooKeeper, the Mesos master and the Alluxio proxy",
        )
    return MasterMemory(reserved, heap)


def has_job_service(version: str) -> bool:
    """Alluxio 2.x persists files only through its job service (v2.9.3 ``FileSystemUtils.persistAndWait`` →
    the master's ``PersistenceScheduler`` → a ``PersistConfig`` job): without a job master, ``fs persist`` and
    the default ``ASYNC_THROUGH`` writes leave files ``TO_BE_PERSISTED`` for ever. 1.8's workers persist by
    themselves (v1.8.2 ``DefaultAsyncPersistHandler``)."""
    return version != "1.8"


def jvm_options(heap: int, direct: int) -> str:
    """A fixed heap (``-Xms`` = ``-Xmx``: no growth pauses, and what the plan counted is what it takes)."""
    return f"-Xms{heap // MiB}m -Xmx{heap // MiB}m -XX:MaxDirectMemorySize={direct // MiB}m"


def java_opts_variables(role: str, master_heap: int | None = None, version: str = "2.9") -> list[tuple[str, str]]:
    """The ``ALLUXIO_*_JAVA_OPTS`` of a node's Alluxio processes (its EnvironmentFile)."""
    variables: list[tuple[str, str]] = []
    jobs = has_job_service(version)
    if role == "master":
        assert master_heap is not None
        variables.append(("ALLUXIO_MASTER_JAVA_OPTS", jvm_options(master_heap, ALLUXIO_MASTER_DIRECT)))
        if jobs:
            variables.append(("ALLUXIO_JOB_MASTER_JAVA_OPTS",
                              jvm_options(ALLUXIO_JOB_MASTER_HEAP, ALLUXIO_JOB_MASTER_DIRECT)))
    else:
        variables.append(("ALLUXIO_WORKER_JAVA_OPTS", jvm_options(ALLUXIO_WORKER_HEAP, ALLUXIO_WORKER_DIRECT)))
        if jobs:
            variables.append(("ALLUXIO_JOB_WORKER_JAVA_OPTS",
                              jvm_options(ALLUXIO_JOB_WORKER_HEAP, ALLUXIO_JOB_WORKER_DIRECT)))
    variables.append(("ALLUXIO_PROXY_JAVA_OPTS", jvm_options(ALLUXIO_PROXY_HEAP, ALLUXIO_PROXY_DIRECT)))
    return variables


def endpoint_region(endpoint: str | None) -> str | None:
    """``eu-de`` from ``https://obs.eu-de.otc.t-systems.com``; ``None`` when the host does not say."""
    if not endpoint:
        return None
    host = (urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}").hostname or "").lower()
    match = OBS_HOST_RE.search(host)
    return match.group(1) if match else None


def s3_signing_properties(alluxio: AlluxioSettings) -> dict[str, str]:
    """What the under-FS needs to sign and address requests to a non-AWS endpoint (see the module doc)."""
    if not alluxio.s3_endpoint:
        return {}  # AWS itself: the SDK knows its regions
    region = alluxio.s3_region or endpoint_region(alluxio.s3_endpoint)
    if alluxio.version == "1.8":
        host = (urlsplit(alluxio.s3_endpoint).hostname or "").lower()
        return {} if host.endswith(".amazonaws.com") else {"alluxio.underfs.s3a.signer.algorithm": S3_V2_SIGNER}
    return {"alluxio.underfs.s3.endpoint.region": region} if region else {}
