"""Alluxio's files and units on both roles: ``alluxio-site.properties``, the units' EnvironmentFile with the
heaps (``alluxio_jvm``), the agency's AWS profile, and the ports that show a master is up."""

from __future__ import annotations

from bootstrap_agent import alluxio_jvm
from bootstrap_agent.desired import DesiredFile, DesiredService, text_file
from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.facts import Facts
from bootstrap_agent.layout import Layout
from bootstrap_agent.node_paths import ALLUXIO_ENV, ALLUXIO_JOURNAL_FORMAT, ALLUXIO_SITE, ALLUXIO_TIER0, AWS_CREDENTIALS
from bootstrap_agent.plan.part import Part
from bootstrap_agent.ports import (
    ALLUXIO_EMBEDDED_JOURNAL_PORT,
    ALLUXIO_JOB_MASTER_JOURNAL,
    ALLUXIO_JOB_MASTER_RPC,
    ALLUXIO_JOB_MASTER_WEB,
    ALLUXIO_JOB_WORKER_PORTS,
    ALLUXIO_MASTER_RPC,
    ALLUXIO_MASTER_WEB,
    ALLUXIO_PROXY_WEB,
    ALLUXIO_WORKER_PORTS,
)
from bootstrap_agent.schema import Settings
from bootstrap_agent.sizes import format_size
from bootstrap_agent.templates import render

INPUTS = (ALLUXIO_SITE, ALLUXIO_ENV)  # what every Alluxio unit is started with


def alluxio_master(settings: Settings, facts: Facts, layout: Layout) -> Part:
    """The master (its journal formatted once per instance before its first start) and the proxy beside it."""
    assert settings.alluxio is not None
    heap = alluxio_jvm.master_memory(settings, facts).alluxio_heap
    files = (_site(settings, facts, layout, "master", None), *_env(settings, facts, layout, "master", heap))
    version = settings.alluxio.version
    jobs = (_job_master(facts, version, len(settings.masters)),) if alluxio_jvm.has_job_service(version) else ()
    return Part(files, (
        DesiredService("alluxio-master", INPUTS, _master_ready(facts, len(settings.masters)), version,
                       first_start=ALLUXIO_JOURNAL_FORMAT),
        _proxy(facts, version),
        *jobs,
    ))


def alluxio_worker(settings: Settings, facts: Facts, layout: Layout, ramdisk: int, requires: tuple[str, ...]) -> Part:
    """The worker on its tier 0 (``requires``: the tier's mount, when it has one) and the proxy beside it."""
    assert settings.alluxio is not None
    files = (_site(settings, facts, layout, "worker", ramdisk), *_env(settings, facts, layout, "worker"))
    version = settings.alluxio.version
    jobs = ((DesiredService("alluxio-job-worker", INPUTS, tuple((facts.ip, p) for p in ALLUXIO_JOB_WORKER_PORTS),
                            version),) if alluxio_jvm.has_job_service(version) else ())
    return Part(files, (
        DesiredService("alluxio-worker", INPUTS, tuple((facts.ip, port) for port in ALLUXIO_WORKER_PORTS[version]),
                       version, requires=requires),
        _proxy(facts, version),
        *jobs,
    ))


def _proxy(facts: Facts, version: str) -> DesiredService:
    return DesiredService("alluxio-proxy", INPUTS, ((facts.ip, ALLUXIO_PROXY_WEB),), version)


def _job_master(facts: Facts, version: str, masters: int) -> DesiredService:
    """The job master beside the master. With several masters only the primary job master serves RPC and web
    (v2.9.3 ``AlluxioJobMasterProcess`` runs the same primary-only services as the master), so a standby shows
    itself by its embedded journal's port, as the master does."""
    ready = (((facts.ip, ALLUXIO_JOB_MASTER_JOURNAL),) if masters > 1
             else ((facts.ip, ALLUXIO_JOB_MASTER_RPC), (facts.ip, ALLUXIO_JOB_MASTER_WEB)))
    return DesiredService("alluxio-job-master", INPUTS, ready, version)


def _master_ready(facts: Facts, masters: int) -> tuple[tuple[str, int], ...]:
    """The ports that show an Alluxio master is up. A single master is always primary: RPC and web. With
    several (2.9, embedded journal) a standby answers neither: its RPC and web ports are a RejectingServer
    until it is promoted, and are free for a moment at each promotion and demotion (v2.9.3
    ``RpcServerService``, ``PrimaryOnlyWebServerService``); the Raft journal's port is held by every master
    whatever its role."""
    if masters > 1:
        return ((facts.ip, ALLUXIO_EMBEDDED_JOURNAL_PORT),)
    return ((facts.ip, ALLUXIO_MASTER_RPC), (facts.ip, ALLUXIO_MASTER_WEB))


def _site(settings: Settings, facts: Facts, layout: Layout, role: str, ramdisk: int | None) -> DesiredFile:
    alluxio = settings.alluxio
    assert alluxio is not None
    v1 = alluxio.version == "1.8"
    masters = settings.masters
    props: dict[str, str] = {}
    if len(masters) == 1:
        props["alluxio.master.hostname"] = facts.ip if role == "master" else masters[0]
    else:
        # 2.x embedded journal HA (validation refuses 1.8 with several masters: no shared journal here).
        if role == "master":
            props["alluxio.master.hostname"] = facts.ip
        props["alluxio.master.rpc.addresses"] = ",".join(f"{ip}:{ALLUXIO_MASTER_RPC}" for ip in masters)
        props["alluxio.master.embedded.journal.addresses"] = ",".join(
            f"{ip}:{ALLUXIO_EMBEDDED_JOURNAL_PORT}" for ip in masters
        )
    if alluxio_jvm.has_job_service(alluxio.version):
        # The job service finds its masters the way the file system does: by this node's address on a master,
        # by the masters' list with several (RPC and journal ports of the job master's own).
        if role == "master":
            props["alluxio.job.master.hostname"] = facts.ip
        else:
            props["alluxio.job.worker.hostname"] = facts.ip
        if len(masters) > 1:
            props["alluxio.job.master.rpc.addresses"] = ",".join(f"{ip}:{ALLUXIO_JOB_MASTER_RPC}" for ip in masters)
            props["alluxio.job.master.embedded.journal.addresses"] = ",".join(
                f"{ip}:{ALLUXIO_JOB_MASTER_JOURNAL}" for ip in masters)
        elif role != "master":
            props["alluxio.job.master.hostname"] = masters[0]
    if role == "master":
        props["alluxio.master.journal.folder"] = layout.path("/var/lib/alluxio/journal")
    props["alluxio.work.dir"] = layout.path("/var/lib/alluxio")
    ufs = "s3a://" + alluxio.root_ufs.split("://", 1)[1]
    props["alluxio.underfs.address" if v1 else "alluxio.master.mount.table.root.ufs"] = ufs
    if alluxio.s3_endpoint:
        props["alluxio.underfs.s3.endpoint"] = alluxio.s3_endpoint
    props.update(alluxio_jvm.s3_signing_properties(alluxio))
    if alluxio.block_size:
        props["alluxio.user.block.size.bytes.default"] = format_size(alluxio.block_size)
    secret = False
    creds = settings.credentials
    if creds is not None and creds.source == "keys":
        assert creds.access_key_id and creds.secret_access_key
        props["aws.accessKeyId" if v1 else "s3a.accessKeyId"] = creds.access_key_id
        props["aws.secretKey" if v1 else "s3a.secretKey"] = creds.secret_access_key
        secret = True
    if role == "worker":
        assert ramdisk is not None
        props["alluxio.worker.hostname"] = facts.ip
        props["alluxio.worker.tieredstore.levels"] = "1"
        props["alluxio.worker.tieredstore.level0.alias"] = "MEM"
        props["alluxio.worker.tieredstore.level0.dirs.path"] = layout.path(ALLUXIO_TIER0)
        props["alluxio.worker.memory.size" if v1 else "alluxio.worker.ramdisk.size"] = format_size(ramdisk)
    content = render(
        "alluxio-site.properties.j2", cluster=settings.cluster, version=alluxio.version, role=role,
        properties=sorted(props.items()),
    )
    return text_file(ALLUXIO_SITE, content, mode=0o600 if secret else 0o644, secret=secret)


def _env(
    settings: Settings, facts: Facts, layout: Layout, role: str, master_heap: int | None = None
) -> tuple[DesiredFile, ...]:
    """The Alluxio units' EnvironmentFile: the processes' heaps (``alluxio_jvm``) and, with an ECS agency, the
    AWS profile file (``_agency_files``), which comes first."""
    agency, variables = _agency_files(settings, facts, layout)
    assert settings.alluxio is not None
    variables = alluxio_jvm.java_opts_variables(role, master_heap, settings.alluxio.version) + variables
    return (*agency, text_file(ALLUXIO_ENV, render("alluxio.env.j2", cluster=settings.cluster, variables=variables)))


def _agency_files(
    settings: Settings, facts: Facts, layout: Layout
) -> tuple[tuple[DesiredFile, ...], list[tuple[str, str]]]:
    """With an ECS agency, Alluxio reads temporary keys from an AWS profile file instead of its properties:
    that file, and the variables that name it.

    No Alluxio property carries a session token, but the AWS SDK's default provider chain reads
    ``aws_session_token`` from the profile file named by ``AWS_CREDENTIAL_PROFILES_FILE`` and re-reads that
    file every few minutes. So the keys rotate (hourly, on OTC) by rewriting the file alone: it is not an input
    of any unit, and a rotation restarts nothing. The EnvironmentFile naming it is an input.
    """
    if settings.credentials is None or settings.credentials.source != "agency":
        return (), []
    keys = facts.s3_credentials
    if keys is None:
        raise InvalidInput("credentials.source", "'agency' needs the ECS agency's temporary keys, and none were given")
    profile = text_file(
        AWS_CREDENTIALS,
        f"[default]\naws_access_key_id = {keys.access}\naws_secret_access_key = {keys.secret}\n"
        f"aws_session_token = {keys.token}\n",
        mode=0o600, secret=True,
    )
    path = layout.path(AWS_CREDENTIALS)
    return (profile,), [("AWS_CREDENTIAL_PROFILES_FILE", path), ("AWS_SHARED_CREDENTIALS_FILE", path)]
