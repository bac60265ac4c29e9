"""A stand-in Alluxio installation (``/opt/alluxio``) whose launch scripts hand over to the Alluxio stand-in.

The image with stand-ins runs the Alluxio units' real ``ExecStart=`` lines (no drop-in replaces them), so
the scripts those lines call must be there, shaped like the real ones of the image's version:

* 2.9 has ``bin/launch-process <master|worker|proxy> [-c]`` (it appeared in 2.1.0); **1.8 has not** — a 1.8
  image without it makes a unit that calls it fail exactly as on a real 1.8 installation. 1.8 starts a
  process from its main class after sourcing ``libexec/alluxio-config.sh`` (as its ``alluxio-start.sh``
  does, in the background; our 1.8 units do it in the foreground).
* ``bin/alluxio formatJournal`` (both versions) runs ``alluxio.cli.Format master``; ``bin/alluxio fs ...`` and
  ``bin/alluxio fsadmin ...`` run the stand-in CLI (``standins.alluxio_cli``) on the same properties.
* 2.9's ``launch-process`` also takes ``job_master`` and ``job_worker`` (the job service, v2.9.3
  ``alluxio.master.AlluxioJobMaster`` / ``alluxio.worker.AlluxioJobWorker``), which 2.9's persist needs.
* ``libexec/alluxio-config.sh`` sets what the real one sets (home, conf and logs folders, every process'
  ``*_JAVA_OPTS`` with the user's options, the server classpath), and finally points ``$JAVA`` at
  ``libexec/standin-java``, keeping the ``$JAVA`` the caller gave in ``ALLUXIO_STANDIN_JAVA``.
* ``libexec/standin-java`` takes a ``java`` command line (``-cp``, JVM options, main class), maps the main
  class to the stand-in's role and runs ``python -m standins.alluxio``, which resolves the real
  Java as the real scripts do and runs it (``java <options> -version``) for the version check.

No upstream code is copied: the scripts are this project's, written to the contract of upstream's (cited in
``bootstrap_agent/data/names/STARTUP-RULES.md``).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from bootstrap_agent.names import ALLUXIO_VERSIONS

FULL_VERSIONS = {"1.8": "1.8.2", "2.9": "2.9.3"}

_HEADER = """\
#!/usr/bin/env bash
# Stand-in of Alluxio {full}'s {name}, written by `python -m standins.alluxio_home` (the
# image with STANDINS=yes). It keeps the real script's contract and hands the process to the Alluxio
# stand-in; see that module's docstring.
"""

_CONFIG_COMMON = """\
VERSION={full}
ALLUXIO_HOME="$(cd -P -- "$(dirname -- "${{BASH_SOURCE[0]}}")/.." && pwd -P)"
ALLUXIO_CONF_DIR="${{ALLUXIO_CONF_DIR:-${{ALLUXIO_HOME}}/conf}}"
ALLUXIO_LOGS_DIR="${{ALLUXIO_LOGS_DIR:-${{ALLUXIO_HOME}}/logs}}"
if [[ -e "${{ALLUXIO_CONF_DIR}}/alluxio-env.sh" ]]; then
  . "${{ALLUXIO_CONF_DIR}}/alluxio-env.sh"
fi
ALLUXIO_JAVA_OPTS+=" -Dalluxio.home=${{ALLUXIO_HOME}} -Dalluxio.conf.dir=${{ALLUXIO_CONF_DIR}}"
ALLUXIO_JAVA_OPTS+=" -Dalluxio.logs.dir=${{ALLUXIO_LOGS_DIR}} -Djava.net.preferIPv4Stack=true"
ALLUXIO_SERVER_CLASSPATH="${{ALLUXIO_CONF_DIR}}/:${{ALLUXIO_CLASSPATH}}:${{ALLUXIO_HOME}}/standin"
"""

# 2.9: the process' defaults first, then ALLUXIO_JAVA_OPTS, then the user's (the later option wins in the JVM).
_CONFIG_29 = """\
for _p in MASTER WORKER PROXY JOB_MASTER JOB_WORKER; do
  _l="ALLUXIO_${_p}_LOGGER"
  _o="ALLUXIO_${_p}_JAVA_OPTS"
  printf -v "$_o" '%s' " -Dalluxio.logger.type=${!_l:-${_p}_LOGGER} ${ALLUXIO_JAVA_OPTS} ${!_o}"
done
unset _p _l _o
ALLUXIO_USER_JAVA_OPTS=" -Dalluxio.logger.type=USER_LOGGER ${ALLUXIO_JAVA_OPTS} ${ALLUXIO_USER_JAVA_OPTS}"
"""

# 1.8: the user's options first, ALLUXIO_JAVA_OPTS appended (with a blank here, which 1.8's own lines lack).
_CONFIG_18 = """\
for _p in MASTER WORKER PROXY; do
  _l="ALLUXIO_${_p}_LOGGER"
  _o="ALLUXIO_${_p}_JAVA_OPTS"
  printf -v "$_o" '%s' "${!_o} ${ALLUXIO_JAVA_OPTS} -Dalluxio.logger.type=${!_l:-${_p}_LOGGER}"
done
unset _p _l _o
ALLUXIO_USER_JAVA_OPTS+=" ${ALLUXIO_JAVA_OPTS} -Dalluxio.logger.type=USER_LOGGER"
"""

_CONFIG_JAVA = """\
# The real script resolves and checks Java here; the stand-in does both, for real, on the caller's JAVA.
export ALLUXIO_STANDIN_JAVA="${JAVA-}"
JAVA="${ALLUXIO_HOME}/libexec/standin-java"
"""

_STANDIN_JAVA = """\
set -euo pipefail
options=()
conf_dir=""
classpath=""
main=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    -cp|-classpath) classpath="${{2:-}}"; shift 2 ;;
    -Dalluxio.conf.dir=*) conf_dir="${{1#*=}}"; options+=("$1"); shift ;;
    -*) options+=("$1"); shift ;;
    *) main="$1"; shift; break ;;
  esac
done
unset _p _l _o
case "$main" in
  alluxio.master.AlluxioMaster) role=master ;;
  alluxio.worker.AlluxioWorker) role=worker ;;
  alluxio.proxy.AlluxioProxy) role=proxy ;;
  alluxio.master.AlluxioJobMaster) role=job_master ;;
  alluxio.worker.AlluxioJobWorker) role=job_worker ;;
  alluxio.cli.Format)
    if [[ "${{1:-}}" != master ]]; then
      echo "standin-java: alluxio.cli.Format ${{*}}: only 'master' (formatJournal) is modelled" >&2
      exit 1
    fi
    role=formatJournal ;;
  *) echo "Error: Could not find or load main class ${{main}}" >&2; exit 1 ;;
esac
# Alluxio finds alluxio-site.properties in alluxio.conf.dir, else on the classpath (its first entry here).
conf_dir="${{conf_dir:-${{classpath%%:*}}}}"
if [[ -n "${{ALLUXIO_STANDIN_JAVA:-}}" ]]; then export JAVA="$ALLUXIO_STANDIN_JAVA"; else unset JAVA; fi
exec {python} -m standins.alluxio "$role" --alluxio-version {version} \\
  --conf "${{conf_dir%/}}/alluxio-site.properties" "--jvm-options=${{options[*]}}"
"""

# Only the real 2.9 launch-process's added defaults: 2.9.3 means to add -Xmx8g (master) and -Xmx4g (worker)
# when no -Xmx is given, but its `contains` is called without the word, always matches and never adds them;
# it does add -XX:MetaspaceSize=256M (master) and -XX:MaxDirectMemorySize=4g (worker).
_LAUNCH_PROCESS = """\
set -e
BIN="$(cd "$(dirname "$(readlink "$0" || echo "$0")")"; pwd)"
usage() { echo "Usage: launch-process <process name> [-c]" >&2; exit 1; }
[[ $# -ge 1 && $# -le 2 ]] || usage
process="$1"
shift
while getopts "hc" option; do
  case "$option" in c) ;; *) usage ;; esac
done
unset _p _l _o
case "$process" in
  master|worker|proxy|job_master|job_worker) ;;
  *) usage ;;
esac
. "${BIN}/../libexec/alluxio-config.sh"
case "$process" in
  master)
    options="${ALLUXIO_MASTER_JAVA_OPTS}"
    [[ "$options" == *XX:MetaspaceSize* ]] || options+=" -XX:MetaspaceSize=256M"
    main=alluxio.master.AlluxioMaster ;;
  worker)
    options="${ALLUXIO_WORKER_JAVA_OPTS}"
    [[ "$options" == *XX:MaxDirectMemorySize* ]] || options+=" -XX:MaxDirectMemorySize=4g"
    main=alluxio.worker.AlluxioWorker ;;
  proxy)
    options="${ALLUXIO_PROXY_JAVA_OPTS}"
    main=alluxio.proxy.AlluxioProxy ;;
  job_master)
    options="${ALLUXIO_JOB_MASTER_JAVA_OPTS}"
    main=alluxio.master.AlluxioJobMaster ;;
  job_worker)
    options="${ALLUXIO_JOB_WORKER_JAVA_OPTS}"
    main=alluxio.worker.AlluxioJobWorker ;;
esac
exec ${JAVA} -cp "${ALLUXIO_SERVER_CLASSPATH}" ${options} "${main}"
"""

_ALLUXIO = """\
BIN="$(cd "$(dirname "$(readlink "$0" || echo "$0")")"; pwd)"
case "${1:-}" in
  formatJournal) ;;
  fs|fsadmin)  # the stand-in CLI (standins/alluxio_cli.py), on the same alluxio-site.properties
    . "${BIN}/../libexec/alluxio-config.sh"
    exec @PYTHON@ -m standins.alluxio_cli --alluxio-version @VERSION@ \\
      --conf "${ALLUXIO_CONF_DIR%/}/alluxio-site.properties" "$@" ;;
  *)
    echo "alluxio (stand-in): only 'formatJournal', 'fs' and 'fsadmin' are modelled, not '${1:-}'" >&2
    exit 1 ;;
esac
. "${BIN}/../libexec/alluxio-config.sh"
echo "Formatting Alluxio Master @ $(hostname -f 2>/dev/null || hostname)"
exec "${JAVA}" -cp "${ALLUXIO_SERVER_CLASSPATH}" ${ALLUXIO_USER_JAVA_OPTS} -Dalluxio.logger.type=Console \\
  alluxio.cli.Format master
"""


def scripts(version: str, python: str) -> dict[str, str]:
    """Relative path -> text of the executable scripts of a stand-in installation of ``version``."""
    if version not in ALLUXIO_VERSIONS:
        raise ValueError(f"Alluxio version must be one of {ALLUXIO_VERSIONS}, not {version!r}")
    full = FULL_VERSIONS[version]

    def header(name: str) -> str:
        return _HEADER.format(full=full, name=name)

    config = (header("libexec/alluxio-config.sh") + "# Sourced by the launch scripts, never run.\n"
              + _CONFIG_COMMON.format(full=full) + (_CONFIG_18 if version == "1.8" else _CONFIG_29) + _CONFIG_JAVA)
    files = {
        "libexec/alluxio-config.sh": config,
        "libexec/standin-java": header("java (the JVM)") + _STANDIN_JAVA.format(
            python=shlex.quote(python), version=version),
        "bin/alluxio": header("bin/alluxio") + _ALLUXIO.replace("@PYTHON@", shlex.quote(python)).replace(
            "@VERSION@", version),
    }
    if version != "1.8":
        files["bin/launch-process"] = header("bin/launch-process") + _LAUNCH_PROCESS
    return files


def install(home: Path, version: str, python: str) -> list[Path]:
    """Write the scripts (0755) and an empty ``conf/`` and ``logs/``; remove a launch-process 1.8 must lack."""
    written = []
    for rel, text in scripts(version, python).items():
        path = home / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
        written.append(path)
    if version == "1.8":
        (home / "bin" / "launch-process").unlink(missing_ok=True)
    for folder in ("conf", "logs"):
        (home / folder).mkdir(parents=True, exist_ok=True)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m standins.alluxio_home",
                                     description="Install a stand-in Alluxio installation.")
    parser.add_argument("--alluxio-version", required=True, choices=ALLUXIO_VERSIONS)
    parser.add_argument("--home", default="/opt/alluxio")
    parser.add_argument("--python", default=sys.executable, help="the Python that runs the stand-in")
    args = parser.parse_args(argv)
    for path in install(Path(args.home), args.alluxio_version, args.python):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
