"""The command line that runs Debian's ZooKeeper 3.8 in the foreground.

Debian's ``zookeeper.jar`` carries no logging backend on its manifest class path, and its init script
daemonizes; both the agent's ``process`` service manager and the tests need a foreground JVM whose log goes
to stdout/stderr. One function builds that command so the tests run ZooKeeper exactly as the agent does.
"""

from __future__ import annotations

import os
import re
import shutil

#: Where Debian installs the jars (``zookeeper``, ``libslf4j-java``, ``liblog4j1.2-java``).
JAR_DIR = "/usr/share/java"
#: Debian's ZooKeeper configuration folder; holds a ``log4j.properties`` with the CONSOLE appender.
DEBIAN_CONF_DIR = "/etc/zookeeper/conf"
MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
#: zookeeper.jar's own manifest names the rest (slf4j-api, netty, jute, ...); these add log4j as backend.
JARS: tuple[str, ...] = ("zookeeper.jar", "slf4j-log4j12.jar", "log4j-1.2.jar")

_HEAP = re.compile(r"^[1-9][0-9]*[kKmMgG]?$")


class ZooKeeperNotInstalled(RuntimeError):
    """Java or one of the jars is missing: the host lacks the ``zookeeper`` (or a JRE) package."""


def java_command(
    config_path: str,
    *,
    heap: str = "256m",
    conf_dir: str | None = None,
    jar_dir: str = JAR_DIR,
) -> list[str]:
    """Return argv that runs ZooKeeper in the foreground with ``config_path`` (a ``zoo.cfg``).

    ``conf_dir`` (default: the folder of ``config_path``) comes first on the class path, so a
    ``log4j.properties`` there wins; Debian's ``/etc/zookeeper/conf`` follows as a fallback, because a
    ``zoo.cfg`` rendered below ``--root`` has no logging configuration beside it.
    """
    if not _HEAP.fullmatch(heap):
        raise ValueError(f"heap: {heap!r} is not a JVM size such as 256m")
    java = shutil.which("java")
    if java is None:
        raise ZooKeeperNotInstalled("java not found on PATH: install openjdk-17-jre-headless")
    jars = [os.path.join(jar_dir, jar) for jar in JARS]
    missing = [jar for jar in jars if not os.path.isfile(jar)]
    if missing:
        raise ZooKeeperNotInstalled(
            f"missing {', '.join(missing)}: install the Debian package 'zookeeper'"
            " (it pulls in slf4j and log4j)"
        )
    config_path = os.path.abspath(config_path)
    conf = os.path.abspath(conf_dir) if conf_dir is not None else os.path.dirname(config_path)
    classpath = [conf]
    if conf != DEBIAN_CONF_DIR and os.path.isdir(DEBIAN_CONF_DIR):
        classpath.append(DEBIAN_CONF_DIR)
    classpath.extend(jars)
    return [
        java,
        f"-Xmx{heap}",
        "-Dzookeeper.root.logger=INFO,CONSOLE",
        "-cp",
        ":".join(classpath),
        MAIN_CLASS,
        config_path,
    ]
