"""What real Alluxio demands before it serves, beyond its properties: a Java it accepts, and a formatted journal.

The Alluxio stand-in (``standins.alluxio``) calls these checks after the properties passed;
each refuses with the real program's words (the upstream files are cited in
``bootstrap_agent/data/names/STARTUP-RULES.md``, section "Alluxio"):

* Java: 2.9's ``libexec/alluxio-config.sh`` runs ``${JAVA} -version`` and exits unless it says 1.8 or 11.
  The check here runs the configured Java for real (never a guess from a file name), with the process' JVM
  options, so an option the JVM refuses (a malformed ``-Xmx``) fails as the real ``exec java ...`` would.
  1.8's script has no version check, only "is there a ``java`` on the PATH".
* Journal: ``AlluxioMasterProcess`` throws "Journal ... has not been formatted!" unless
  ``JournalSystem.isFormatted()``: for 2.9's embedded (Raft) journal the journal folder exists; for 1.8's UFS
  journal every enabled master's ``<folder>/<Master>/v1/`` holds a ``_format_<millis>`` file.
  ``format_journal`` makes exactly that state, as ``bin/alluxio formatJournal`` (``alluxio.cli.Format master``)
  does: it empties or creates the folder(s).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

JAVA_TIMEOUT = 30.0
DEFAULT_HOME = "/opt/alluxio"  # alluxio.home's default in both versions
FORMAT_FILE_PREFIX = "_format_"  # alluxio.master.format.file_prefix's default (1.8)
# 1.8.2: the MasterFactory services whose isEnabled() is true without extra settings, plus the two optional ones.
V1_MASTERS = ("BlockMaster", "FileSystemMaster", "MetaMaster", "MetricsMaster")
V1_OPTIONAL_MASTERS = {"LineageMaster": "alluxio.user.lineage.enabled", "KeyValueMaster": "alluxio.keyvalue.enabled"}
UFS_JOURNAL_VERSION = "v1"  # UfsJournal.VERSION: each master's journal lives in <folder>/<Master>/v1

_VERSION_RE = re.compile(r'version "([^"]*)"')


class StartRefused(RuntimeError):
    """Real Alluxio would not start: the message is the real one."""


# --- Java ---------------------------------------------------------------------------------------------------


def resolve_java(version: str, env: Mapping[str, str]) -> str:
    """The ``java`` the launch scripts would run, from the same variables in the same order.

    2.9 (``libexec/alluxio-config.sh``): ``$JAVA``, else an executable ``$JAVA_HOME/bin/java``, else ``java``
    on the PATH. 1.8: a ``java`` must be on the PATH at all, then ``$JAVA``, else ``$JAVA_HOME/bin/java``.
    """
    path = env.get("PATH", os.defpath)
    on_path = shutil.which("java", path=path)
    java_home = env.get("JAVA_HOME", "")
    if version == "1.8":
        if not on_path:
            raise StartRefused("Cannot find the 'java' command.")
        home = java_home or str(Path(on_path).parent.parent)
        return env.get("JAVA") or f"{home}/bin/java"
    if env.get("JAVA"):
        return env["JAVA"]
    if java_home and os.access(f"{java_home}/bin/java", os.X_OK):
        return f"{java_home}/bin/java"
    if on_path:
        return on_path
    raise StartRefused("Error: Cannot find 'java' on path or under $JAVA_HOME/bin/. Please set JAVA_HOME in "
                       "alluxio-env.sh or user bash profile.")


def run_java(java: str, jvm_options: Sequence[str]) -> str:
    """``java <options> -version`` for real: the JVM's own refusal of an option, else its version text."""
    try:
        result = subprocess.run([java, *jvm_options, "-version"], capture_output=True, text=True,
                                timeout=JAVA_TIMEOUT, check=False)
    except FileNotFoundError:
        raise StartRefused(f"{java}: No such file or directory") from None
    except PermissionError:
        raise StartRefused(f"{java}: Permission denied") from None
    except subprocess.TimeoutExpired:
        raise StartRefused(f"{java} -version gave no answer within {JAVA_TIMEOUT:.0f} s") from None
    output = (result.stderr + result.stdout).strip()
    if result.returncode != 0:
        lines = [line for line in output.splitlines() if line.strip()]
        if not lines:
            raise StartRefused(f"{java} exited with {result.returncode}")
        raise StartRefused(lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}")
    return output


def java_version(version_text: str) -> str:
    """What ``awk -F '"' '/version/ {print $2}'`` takes from ``java -version``: "11.0.13", "1.8.0_392"."""
    match = _VERSION_RE.search(version_text)
    return match.group(1) if match else ""


def accepted_by_alluxio_29(java_version_text: str) -> bool:
    """1.8.x or 11.x, compared on the numbers as the script's awk does (``001008`` or major ``011``)."""
    parts = java_version_text.split(".")

    def number(index: int) -> int:
        digits = re.match(r"\d*", parts[index]).group(0) if index < len(parts) else ""  # type: ignore[union-attr]
        return int(digits) if digits else 0

    return (number(0), number(1)) == (1, 8) or number(0) == 11


def check_java(version: str, env: Mapping[str, str], jvm_options: Sequence[str], java: str | None = None) -> str:
    """Refuse as the real launch would; returns the Java version that ran."""
    java = java or resolve_java(version, env)
    found = java_version(run_java(java, jvm_options))
    if version != "1.8" and not accepted_by_alluxio_29(found):
        raise StartRefused(f"Error: Alluxio requires Java 8 or Java 11, currently Java {found} found.")
    return found


# --- journal ------------------------------------------------------------------------------------------------


def journal_folder(properties: Mapping[str, str], env: Mapping[str, str]) -> str | None:
    """``alluxio.master.journal.folder`` (default ``${alluxio.work.dir}/journal``); ``None`` when not local."""
    home = properties.get("alluxio.home") or env.get("ALLUXIO_HOME") or DEFAULT_HOME
    work = properties.get("alluxio.work.dir") or home
    folder = properties.get("alluxio.master.journal.folder") or f"{work}/journal"
    folder = folder.replace("${alluxio.work.dir}", work).replace("${alluxio.home}", home)
    if folder.startswith("file://"):
        folder = folder[len("file://"):]
    return (folder.rstrip("/") or "/") if folder.startswith("/") else None


def journal_type(version: str, properties: Mapping[str, str]) -> str:
    return properties.get("alluxio.master.journal.type", "UFS" if version == "1.8" else "EMBEDDED").strip().upper()


def _v1_masters(properties: Mapping[str, str]) -> list[str]:
    enabled = [name for name, key in V1_OPTIONAL_MASTERS.items() if properties.get(key, "").strip() == "true"]
    return [*V1_MASTERS, *enabled]


def _ufs_locations(folder: str, properties: Mapping[str, str]) -> list[Path]:
    return [Path(folder, master, UFS_JOURNAL_VERSION) for master in _v1_masters(properties)]


def is_formatted(version: str, folder: str, properties: Mapping[str, str]) -> bool:
    if version != "1.8":
        return os.path.exists(folder)  # RaftJournalSystem.isFormatted(): mPath.exists()
    prefix = properties.get("alluxio.master.format.file_prefix", FORMAT_FILE_PREFIX)
    for location in _ufs_locations(folder, properties):
        try:
            if not any(name.startswith(prefix) for name in os.listdir(location)):
                return False
        except OSError:
            return False
    return True


def unformatted_message(version: str, folder: str) -> str:
    system = f"RaftJournalSystem{{JournalPath={folder}}}" if version != "1.8" else "UfsJournalSystem"
    return (f"Failed to create master process: java.lang.RuntimeException: Journal {system} has not been "
            "formatted!")


def check_journal(version: str, properties: Mapping[str, str], env: Mapping[str, str]) -> str | None:
    """Refuse an unformatted journal; returns the folder checked (``None``: not a journal the stand-in models)."""
    folder = journal_folder(properties, env)
    if folder is None or journal_type(version, properties) != ("UFS" if version == "1.8" else "EMBEDDED"):
        return None
    if not is_formatted(version, folder, properties):
        raise StartRefused(unformatted_message(version, folder))
    return folder


def _empty(folder: Path) -> None:
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _format_folder(folder: Path) -> None:
    """``format()`` of both journals: a folder is emptied, anything else replaced by a new folder."""
    if folder.is_dir():
        _empty(folder)
        return
    if folder.exists() or folder.is_symlink():
        folder.unlink()
    folder.mkdir(parents=True)


def format_journal(version: str, properties: Mapping[str, str], env: Mapping[str, str]) -> str:
    """What ``bin/alluxio formatJournal`` leaves behind; returns the folder formatted."""
    folder = journal_folder(properties, env)
    if folder is None:
        raise StartRefused("the stand-in formats only a local journal folder")
    if version != "1.8":
        _format_folder(Path(folder))
        return folder
    prefix = properties.get("alluxio.master.format.file_prefix", FORMAT_FILE_PREFIX)
    for location in _ufs_locations(folder, properties):
        _format_folder(location)
        (location / f"{prefix}{int(time.time() * 1000)}").touch()
    return folder


# --- the stand-in's command line ----------------------------------------------------------------------------

FORMAT_COMMAND = "formatJournal"  # as `bin/alluxio formatJournal`


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--java`` (the launch scripts' resolved ``$JAVA``) and ``--jvm-options=...`` (what they pass to it).

    Without them (the process manager runs the stand-in directly) the Java is resolved from ``JAVA`` /
    ``JAVA_HOME`` / ``PATH`` as the scripts do, and the options come from ``ALLUXIO_<ROLE>_JAVA_OPTS``.
    """
    parser.add_argument("--java", help="the java the launch script resolved (default: as the scripts resolve it)")
    parser.add_argument("--jvm-options", help="the JVM options of the process, blank-separated (give it as "
                        "--jvm-options=...; default: $ALLUXIO_<ROLE>_JAVA_OPTS)")


def jvm_options(role: str, args: argparse.Namespace, env: Mapping[str, str]) -> list[str]:
    """The options as the shell passes them: the variable unquoted, split on blanks."""
    if args.jvm_options is not None:
        return str(args.jvm_options).split()
    if role == FORMAT_COMMAND:
        return env.get("ALLUXIO_USER_JAVA_OPTS", "").split()
    return env.get(f"ALLUXIO_{role.upper()}_JAVA_OPTS", "").split()


def check_start(role: str, version: str, properties: Mapping[str, str], args: argparse.Namespace) -> dict[str, Any]:
    """Everything beyond the properties that the real process checks before it serves; what was found."""
    env = os.environ
    options = jvm_options(role, args, env)
    found: dict[str, Any] = {"java": check_java(version, env, options, args.java), "jvm_options": options}
    if role == "master":
        from standins.alluxio_ha import embedded_journal  # it imports this module

        # The Raft journal is built (and refuses a list without this master) before the format check.
        raft = embedded_journal(version, properties)
        if raft is not None:
            found["embedded_journal"] = {"members": [f"{h}:{p}" for h, p in raft.members], "me": raft.me}
        found["journal"] = check_journal(version, properties, env)
    return found


def format_command(version: str, properties: Mapping[str, str], args: argparse.Namespace) -> dict[str, Any]:
    """``bin/alluxio formatJournal``: the same Java check as every launch (it sources the same config), then
    ``alluxio.cli.Format master``."""
    env = os.environ
    java = check_java(version, env, jvm_options(FORMAT_COMMAND, args, env), args.java)
    return {"java": java, "journal": format_journal(version, properties, env)}
