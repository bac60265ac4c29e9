"""Stand-in for Spark's ``bin/spark-class`` as the shuffle unit runs it: ``spark-class <main class>``.

Used where no Spark is installed (the process manager in the netns tests, images built with ``STANDINS=yes``
and no Spark: ``image/install-node.sh`` then puts a ``/opt/spark/bin/spark-class`` that hands over to
``python -m standins.tools spark-class``). The unit's own ``ExecStart=`` line is run
unchanged, so the stand-in sees the class the unit asks for, reads what the real launcher reads
(``SPARK_CONF_DIR``, else ``$SPARK_HOME/conf``, ``/spark-defaults.conf``; ``-D`` options in
``SPARK_DAEMON_JAVA_OPTS``/``SPARK_SHUFFLE_OPTS``, which override the file; ``SPARK_DAEMON_MEMORY``), and
refuses where the real service would fail, or (stated as stricter rules) where it would start but not work:

* a main class that is not Spark's: the JVM's "Could not find or load main class";
* the generic ``org.apache.spark.deploy.ExternalShuffleService``: on Mesos every driver sends ``RegisterDriver``,
  which its ``ExternalBlockHandler.handleMessage`` answers with ``java.lang.UnsupportedOperationException:
  Unexpected message: ...RegisterDriver@...``, so no application's shuffle files are ever cleaned (stricter:
  the real one starts; ``tests/test_spark.py`` shows the real answer);
* a ``spark.*`` key Spark 3.5 does not know (stricter: Spark ignores it silently);
* no ``spark.local.dir`` (or the temp dir itself), or a private ``/tmp`` (``PrivateTmp=yes``): executors on
  Mesos with the shuffle service write to ``spark.local.dir``, else ``java.io.tmpdir``, and the service must
  read those files (stricter: the real one starts, and fails every fetch).

Rules, upstream files and tests: ``bootstrap_agent/data/names/STARTUP-RULES.md`` ("Spark").
"""

from __future__ import annotations

import ipaddress
import os
import posixpath
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

from bootstrap_agent.spark import (
    GENERIC_SHUFFLE_CLASS,
    SHUFFLE_CLASS,
    SPARK_HOME,
    SPARK_VERSION,
    unknown_keys,
)
from standins.common import fail, install_stop_handlers, listen_address, log_event, serve, tcp_listener
from standins.properties import PropertiesError, parse_properties

PROGRAM = "spark-class"
_DAEMON_MEMORY = re.compile(r"^\d+[kmgtKMGT]?$")
_TMP_DIRS = ("/tmp", "/var/tmp")
REGISTER_DRIVER = "org.apache.spark.network.shuffle.protocol.mesos.RegisterDriver"  # the drivers' message class


def defaults_file(environ: Mapping[str, str]) -> str:
    """``Utils.getDefaultPropertiesFile``: ``$SPARK_CONF_DIR`` or ``$SPARK_HOME/conf``, ``spark-defaults.conf``."""
    conf = environ.get("SPARK_CONF_DIR") or posixpath.join(environ.get("SPARK_HOME") or SPARK_HOME, "conf")
    return posixpath.join(conf, "spark-defaults.conf")


def java_properties(opts: str) -> dict[str, str]:
    """The ``-Dkey=value`` words of the daemon's Java options (``SparkConf`` loads ``spark.*`` ones first)."""
    props: dict[str, str] = {}
    for word in shlex.split(opts):
        if word.startswith("-D"):
            key, sep, value = word[2:].partition("=")
            props[key] = value if sep else ""
    return props


def private_tmp(mountinfo: str) -> bool:
    """Whether ``/tmp`` or ``/var/tmp`` is systemd's ``PrivateTmp=`` mount (its root is a systemd-private dir)."""
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] in _TMP_DIRS and "/systemd-private-" in fields[3]:
            return True
    return False


def check_main_class(main_class: str) -> None:
    if main_class == GENERIC_SHUFFLE_CLASS:
        fail(PROGRAM, f"{GENERIC_SHUFFLE_CLASS} on a Mesos agent: every driver's registration would fail with "
                      f"java.lang.UnsupportedOperationException: Unexpected message: {REGISTER_DRIVER}@... and no "
                      f"application's shuffle files would be cleaned; run {SHUFFLE_CLASS} "
                      "(sbin/start-mesos-shuffle-service.sh) [stand-in rule, stricter than Spark]")
    if main_class != SHUFFLE_CLASS:
        fail(PROGRAM, f"Error: Could not find or load main class {main_class} (the stand-in runs only "
                      f"{SHUFFLE_CLASS}); Caused by: java.lang.ClassNotFoundException: {main_class}", code=1)


def configuration(environ: Mapping[str, str]) -> dict[str, str]:
    """The service's Spark properties: ``-D`` options over ``spark-defaults.conf``; unknown keys refused."""
    path = defaults_file(environ)
    try:
        # Spark's Utils.getPropertiesFromFile: Properties.load on a UTF-8 reader, then every value trimmed.
        file_props = {k: v.strip() for k, v in parse_properties(Path(path).read_text("utf-8")).items()}
    except FileNotFoundError:
        file_props = {}  # Spark starts without the file
    except (OSError, UnicodeDecodeError, PropertiesError) as exc:
        fail(PROGRAM, f"Exception in thread \"main\" org.apache.spark.SparkException: Failed when loading Spark "
                      f"properties from {path}: {exc}", code=1)
    opts = java_properties(environ.get("SPARK_DAEMON_JAVA_OPTS", "") + " " + environ.get("SPARK_SHUFFLE_OPTS", ""))
    for where, props in ((path, file_props), ("SPARK_DAEMON_JAVA_OPTS/SPARK_SHUFFLE_OPTS", opts)):
        unknown = unknown_keys(props)
        if unknown:
            fail(PROGRAM, f"unknown Spark {SPARK_VERSION} property {unknown[0]} in {where} "
                          "[stand-in rule, stricter than Spark, which ignores it]")
    return {**{k: v for k, v in file_props.items() if k.startswith("spark.")}, **opts}


def check_local_dir(props: Mapping[str, str], mountinfo: str) -> None:
    """The executors' local dir must be one the service can read (see the module docstring)."""
    dirs = [d.strip().rstrip("/") for d in props.get("spark.local.dir", "").split(",") if d.strip()]
    if not dirs or any(d in _TMP_DIRS for d in dirs):
        fail(PROGRAM, f"spark.local.dir is {','.join(dirs) or 'unset'}: executors on Mesos with the shuffle service "
                      "write their shuffle files there, else to java.io.tmpdir (/tmp) (Utils.getConfiguredLocalDirs); "
                      "give a folder that executors and the service share, not the temp dir "
                      "[stand-in rule, stricter than Spark]")
    if private_tmp(mountinfo):
        fail(PROGRAM, "this service has a private /tmp (PrivateTmp=yes): it cannot read the shuffle files of "
                      "executors that use java.io.tmpdir [stand-in rule, stricter than Spark]")


def spark_class(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    """``spark-class CLASS [ARGS]``: check as above, then listen on the shuffle port until SIGTERM."""
    if not argv:
        fail(PROGRAM, "Usage: spark-class <class> [<args>]", code=1)
    stop = install_stop_handlers()
    check_main_class(argv[0])
    memory = environ.get("SPARK_DAEMON_MEMORY", "1g")
    if not _DAEMON_MEMORY.match(memory):
        fail(PROGRAM, f"Invalid maximum heap size: -Xmx{memory}; Error: Could not create the Java Virtual Machine.",
             code=1)
    props = configuration(environ)
    try:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    except OSError:
        mountinfo = ""
    check_local_dir(props, mountinfo)
    try:
        host = str(ipaddress.ip_address(environ.get("SPARK_LOCAL_IP") or ""))
    except ValueError:
        fail(PROGRAM, f"SPARK_LOCAL_IP must be an IP address, got {environ.get('SPARK_LOCAL_IP')!r}")
    port_text = props.get("spark.shuffle.service.port", "7337")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        fail(PROGRAM, f"java.lang.NumberFormatException: spark.shuffle.service.port should be int, but was "
                      f"{port_text}", code=1)
    server = tcp_listener(PROGRAM, host, int(port_text))
    log_event("standin_started", program=PROGRAM, main_class=argv[0], listen=listen_address(server), heap=memory,
              local_dir=props["spark.local.dir"], pid=os.getpid())
    return serve([server], stop)
