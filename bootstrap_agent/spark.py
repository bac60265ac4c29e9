"""Spark on the nodes: ``spark-defaults.conf`` for every node, the shuffle service's environment for agents.

The original cluster's workflow is: log in to a master and run ``spark-shell``/``spark-submit`` against Mesos,
reading ``alluxio://`` and ``s3a://`` paths. What Spark needs for that is rendered here, once, for every node:

* ``/etc/spark/conf/spark-defaults.conf`` (``SPARK_CONF_DIR``; the image exports it for logins and the shuffle
  unit reads it): the Mesos master URL from ZooKeeper, ``spark.mesos.executor.home``, the shuffle service, the
  executors' local dir, the Alluxio client on the driver's and executors' classpath, and the S3A settings.
  World-readable, so it holds **no key**: S3A reads them through the AWS SDK's profile provider from
  ``/etc/spark/aws-credentials`` (0600 root), named by ``AWS_CREDENTIAL_PROFILES_FILE`` in ``spark-env.sh``
  (drivers: ``load-spark-env.sh`` sources it) and ``spark.executorEnv.*`` (executors). So root's
  ``spark-shell`` on a master reads S3, and no other user of the node can.
* ``/etc/default/spark-shuffle`` on agents: the environment of ``spark-class
  org.apache.spark.deploy.mesos.MesosExternalShuffleService`` (heap, address, ``SPARK_CONF_DIR``).

Executors on Mesos with the shuffle service on write their shuffle files to ``spark.local.dir``, else to
``java.io.tmpdir`` (apache/spark v3.5.x ``core/src/main/scala/org/apache/spark/util/Utils.scala``
``getConfiguredLocalDirs``: ``MESOS_SANDBOX`` is used only when the shuffle service is off); the service must
see those files. So the local dir is ``/var/lib/mesos/spark``, below the Mesos work dir (a RAM disk when
``mesos.work_dir_ramdisk`` says so), never ``/tmp`` (the unit's ``PrivateTmp=`` would hide it and
systemd-tmpfiles cleans it).

Every key rendered is checked against Spark 3.5's own list (``data/names/spark-3.5.txt``, see ``SOURCES.md``)
or one of the prefixes Spark passes on without declaring the keys: an unknown key is an error here, at render
time, and the Spark stand-in refuses it too (Spark itself ignores it silently: a typo costs a job).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from bootstrap_agent.alluxio_jvm import endpoint_region
from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.facts import Facts
from bootstrap_agent.names import listed
from bootstrap_agent.schema import Settings

SPARK_VERSION = "3.5"
SPARK_KEYS_FILE = "spark-3.5.txt"
#: Prefixes Spark hands on as a whole (``SparkHadoopUtil.appendSparkHadoopConfigs``: ``spark.hadoop.*`` to
#: Hadoop's Configuration; ``SparkConf.getExecutorEnv``: ``spark.executorEnv.*``; the Mesos cluster
#: dispatcher's ``spark.mesos.driverEnv.*``): their keys are not declared anywhere in Spark.
SPARK_KEY_PREFIXES = ("spark.hadoop.", "spark.executorEnv.", "spark.mesos.driverEnv.")
SPARK_HOME = "/opt/spark"  # a Spark distribution: the image's SPARK_TARBALL, or the pyspark wheel's pyspark/
SPARK_CONF_DIR = "/etc/spark/conf"
SPARK_DEFAULTS = f"{SPARK_CONF_DIR}/spark-defaults.conf"
SPARK_ENV_SH = f"{SPARK_CONF_DIR}/spark-env.sh"
SPARK_AWS_CREDENTIALS = "/etc/spark/aws-credentials"  # 0600 root: an AWS profile file
SPARK_LOCAL_DIR = "/var/lib/mesos/spark"  # below the Mesos work dir: executors and the shuffle service share it
SHUFFLE_CLASS = "org.apache.spark.deploy.mesos.MesosExternalShuffleService"
GENERIC_SHUFFLE_CLASS = "org.apache.spark.deploy.ExternalShuffleService"
ALLUXIO_CLIENT_JARS = "/opt/alluxio/client/*"  # alluxio-<version>-client.jar of the Alluxio tarball
#: hadoop-aws 3.3.x (Spark 3.5's Hadoop) with AWS SDK v1: reads AWS_CREDENTIAL_PROFILES_FILE, re-reads it
#: when it changes (the agency's keys rotate hourly), and takes aws_session_token.
S3A_CREDENTIALS_PROVIDER = "com.amazonaws.auth.profile.ProfileCredentialsProvider"


@dataclass(frozen=True)
class SparkNode:
    """What Spark needs to know about the cluster and this node (from the settings, the facts, the layout)."""

    cluster: str
    ip: str
    master_url: str  # mesos://zk://.../mesos
    shuffle_service: bool
    shuffle_port: int
    local_dir: str  # the layout's path of SPARK_LOCAL_DIR
    conf_dir: str  # the layout's path of SPARK_CONF_DIR
    credentials_file: str  # the layout's path of SPARK_AWS_CREDENTIALS
    alluxio: bool
    s3_endpoint: str | None = None
    s3_region: str | None = None  # the signing region: as Alluxio's (alluxio.s3_region, else from the endpoint)
    s3_keys: bool = False  # the node has S3 keys (the credentials file is rendered)


@dataclass(frozen=True)
class SparkFile:
    """A file for the plan (``plan.common.spark_client`` makes it a ``DesiredFile``)."""

    path: str
    text: str
    mode: int = 0o644
    secret: bool = False


def spark_node(settings: Settings, facts: Facts, path: Callable[[str], str], master_url: str) -> SparkNode:
    alluxio = settings.alluxio
    return SparkNode(
        cluster=settings.cluster, ip=facts.ip, master_url=master_url,
        shuffle_service=settings.spark.shuffle_service, shuffle_port=settings.spark.shuffle_port,
        local_dir=path(SPARK_LOCAL_DIR), conf_dir=path(SPARK_CONF_DIR), credentials_file=path(SPARK_AWS_CREDENTIALS),
        alluxio=alluxio is not None, s3_endpoint=alluxio.s3_endpoint if alluxio else None,
        s3_region=(alluxio.s3_region or endpoint_region(alluxio.s3_endpoint)) if alluxio else None,
        s3_keys=_keys(settings, facts) is not None,
    )


def _keys(settings: Settings, facts: Facts) -> tuple[str, str, str | None] | None:
    """The node's S3 keys: the user-data's, or the ECS agency's temporary ones (with their token)."""
    creds = settings.credentials
    if creds is None:
        return None
    if creds.source == "keys" and creds.access_key_id and creds.secret_access_key:
        return creds.access_key_id, creds.secret_access_key, None
    if creds.source == "agency" and facts.s3_credentials is not None:
        keys = facts.s3_credentials
        return keys.access, keys.secret, keys.token
    return None


def spark_files(settings: Settings, facts: Facts, path: Callable[[str], str], master_url: str) -> list[SparkFile]:
    """Every node's Spark client configuration: defaults, ``spark-env.sh`` and, with keys, the 0600 profile.

    The profile file is rewritten by every pass (the agency's keys rotate) but is the input of no unit: a
    rotation restarts nothing, and the SDK re-reads the file.
    """
    node = spark_node(settings, facts, path, master_url)
    files = [SparkFile(SPARK_DEFAULTS, render_defaults(node)), SparkFile(SPARK_ENV_SH, render_env_sh(node))]
    keys = _keys(settings, facts)
    if keys is not None:
        files.append(SparkFile(SPARK_AWS_CREDENTIALS, render_credentials(*keys), 0o600, secret=True))
    return files


def known_key(key: str) -> bool:
    """Whether Spark 3.5 knows the property ``key`` (its list, or a pass-through prefix)."""
    return key in listed(SPARK_KEYS_FILE) or any(key.startswith(p) and len(key) > len(p) for p in SPARK_KEY_PREFIXES)


def unknown_keys(keys: Iterable[str]) -> list[str]:
    """The ``spark.*`` keys Spark 3.5 does not know (Spark itself reads only ``spark.*`` from its files)."""
    return sorted(k for k in keys if k.startswith("spark.") and not known_key(k))


def check_keys(props: Mapping[str, str], where: str) -> None:
    """Refuse, before anything is written, a property Spark 3.5 would silently ignore."""
    unknown = unknown_keys(props)
    if unknown:
        raise InvalidInput("spark", f"{where}: unknown Spark {SPARK_VERSION} propert"
                                    f"{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}")


def defaults(node: SparkNode) -> dict[str, str]:
    """The properties of ``spark-defaults.conf``: what spark-shell on a master needs to run on this cluster."""
    props = {
        "spark.master": node.master_url,
        "spark.mesos.executor.home": SPARK_HOME,
        "spark.local.dir": node.local_dir,
        "spark.shuffle.service.enabled": "true" if node.shuffle_service else "false",
    }
    if node.shuffle_service:
        props["spark.shuffle.service.port"] = str(node.shuffle_port)
    if node.alluxio:  # alluxio:// paths: the client jar registers the scheme with Hadoop's FileSystem
        props["spark.driver.extraClassPath"] = ALLUXIO_CLIENT_JARS
        props["spark.executor.extraClassPath"] = ALLUXIO_CLIENT_JARS
    if node.s3_endpoint:
        # OBS (or another S3 API): its endpoint and signing region (the SDK cannot derive OBS's from its host
        # name), as Alluxio gets them (alluxio_jvm). Virtual-hosted requests (bucket.obs.<region>...), OBS's
        # default and what Alluxio's under-FS sends too: said explicitly, so both address the bucket alike.
        props["spark.hadoop.fs.s3a.endpoint"] = node.s3_endpoint
        props["spark.hadoop.fs.s3a.path.style.access"] = "false"
        if node.s3_region:
            props["spark.hadoop.fs.s3a.endpoint.region"] = node.s3_region
    if node.s3_keys:
        props["spark.hadoop.fs.s3a.aws.credentials.provider"] = S3A_CREDENTIALS_PROVIDER
        props["spark.executorEnv.AWS_CREDENTIAL_PROFILES_FILE"] = node.credentials_file
    return props


def render_defaults(node: SparkNode) -> str:
    """``spark-defaults.conf`` text (Java properties, ``key value`` lines); unknown keys are refused."""
    props = defaults(node)
    check_keys(props, posixpath.basename(SPARK_DEFAULTS))
    lines = [f"# Rendered by bootstrap-agent for cluster {node.cluster}: Spark {SPARK_VERSION} defaults of this node.",
             "# No secret here: S3 keys are read from a root-only profile file (see spark-env.sh)."]
    lines += [f"{key} {value}" for key, value in sorted(props.items())]
    return "\n".join(lines) + "\n"


def render_env_sh(node: SparkNode) -> str:
    """``spark-env.sh``, sourced by every Spark command (``bin/load-spark-env.sh``): the driver's S3 keys file."""
    lines = [f"# Rendered by bootstrap-agent for cluster {node.cluster}: sourced by Spark's load-spark-env.sh."]
    if node.s3_keys:
        lines += ["# S3A's profile provider reads the node's keys from here (0600 root: root's spark-shell only).",
                  f"export AWS_CREDENTIAL_PROFILES_FILE={node.credentials_file}"]
    return "\n".join(lines) + "\n"


def render_credentials(access: str, secret: str, token: str | None = None) -> str:
    """An AWS profile file with the node's keys (and the agency's session token)."""
    text = f"[default]\naws_access_key_id = {access}\naws_secret_access_key = {secret}\n"
    return text + (f"aws_session_token = {token}\n" if token else "")


def shuffle_environment(node: SparkNode, heap_mib: int) -> list[tuple[str, str]]:
    """``/etc/default/spark-shuffle``: what ``bin/spark-class`` and the launcher read for the shuffle service
    (``SPARK_DAEMON_MEMORY`` is its heap; its port and everything else come from ``spark-defaults.conf``)."""
    return [
        ("SPARK_CONF_DIR", node.conf_dir),
        ("SPARK_LOCAL_IP", node.ip),
        ("SPARK_DAEMON_MEMORY", f"{heap_mib}m"),
    ]
