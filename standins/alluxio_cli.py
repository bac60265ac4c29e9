"""The stand-in ``alluxio fs ...`` / ``alluxio fsadmin ...``: the commands a node's drain runs, with the real
words, options, output formats and exit codes (``-1`` → 255) of each version.

Upstream (``shell/src/main/java/alluxio/cli/...``, v2.9.3 and v1.8.2; cited in STARTUP-RULES.md A9–A11):
``fs/command/LsCommand.java`` (``ls [-R] [-d] <path>``), ``LocationCommand.java`` (``location <path>``),
``PersistCommand.java`` (2.9: ``-p/-t/-w``, "Found N files to persist.", exit 0 even when a file timed out;
1.8: one file after the other, "persisted file <p> with size <n>"), ``fsadmin/report/CapacityCommand.java``
(``report capacity``), ``core/common/.../cli/AbstractShell.java`` (unknown commands). 2.9.3 has no
``fsadmin decommissionWorker`` (it came with v2.9.4) and the stand-in refuses it as 2.9.3 does.

1.8's persist waits a fixed 20 minutes for each file; the stand-in reads ``ALLUXIO_STANDIN_PERSIST_WAIT_MS``
so tests need not wait that long (a stand-in knob, not Alluxio's).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NoReturn

from bootstrap_agent.names import ALLUXIO_VERSIONS
from standins.alluxio_rest import StandinCallError, call_master
from standins.properties import parse_properties

FAIL = 255  # System.exit(-1)
FS_COMMANDS = ("cat", "checksum", "chgrp", "chmod", "chown", "copyFromLocal", "copyToLocal", "count", "cp",
               "du", "free", "freeWorker", "head", "location", "ls", "mkdir", "mount", "mv", "persist", "pin",
               "rm", "stat", "tail", "test", "touch", "unmount", "unpin")
FSADMIN_COMMANDS = ("backup", "doctor", "getBlockInfo", "journal", "metrics", "pathConf", "report", "ufs",
                    "updateConf")
PERSIST_WAIT_18_MS = 20 * 60 * 1000


class Cli:
    def __init__(self, version: str, properties: Mapping[str, str]) -> None:
        self.version = version
        self.properties = properties

    def master(self, path: str, payload: Any = None) -> Any:
        return call_master(self.properties, path, payload)

    # --- fs ls ----------------------------------------------------------------------------------------------

    def ls_line(self, status: Mapping[str, Any]) -> str:
        user = getpass.getuser()
        folder = bool(status["folder"])
        perm = ("drwxr-xr-x" if folder else "-rw-r--r--")
        when = datetime.fromtimestamp(status["lastModificationTimeMs"] / 1000)
        date = when.strftime("%m-%d-%Y %H:%M:%S:") + f"{when.microsecond // 1000:03d}"
        in_alluxio = "DIR" if folder else f"{status['inAlluxioPercentage']}%"
        perm_width = 11 if self.version == "1.8" else 12
        return (f"{perm:<{perm_width}}{user:<15}{user:<15}{status['length']:>15}{status['persistenceState']:>16}"
                f"{date:>24}{in_alluxio:>5} {status['path']:<5}")

    def ls(self, args: list[str]) -> int:
        parser = _parser("ls")
        parser.add_argument("-R", "--recursive", action="store_true")
        parser.add_argument("-d", action="store_true")
        parser.add_argument("path", nargs="+")
        opts = parser.parse_args(args)
        for path in opts.path:
            if opts.d:
                print(self.ls_line(self.master("/standin/v1/fs/status", {"path": path})))
                continue
            for status in self.master("/standin/v1/fs/list", {"path": path, "recursive": opts.recursive}):
                print(self.ls_line(status))
        return 0

    # --- fs location ----------------------------------------------------------------------------------------

    def location(self, args: list[str]) -> int:
        if len(args) != 1:
            return _usage("location", "location <path>", "Displays the list of hosts storing the specified file.",
                          len(args))
        status = self.master("/standin/v1/fs/status", {"path": args[0]})
        print(f"{args[0]} with file id {status['fileId']} is on nodes: ")
        for info in status["fileBlockInfos"]:
            for location in info["blockInfo"]["locations"]:
                print(location["workerAddress"]["host"])
        return 0

    # --- fs persist -----------------------------------------------------------------------------------------

    def _unpersisted(self, path: str) -> list[Mapping[str, Any]]:
        status = self.master("/standin/v1/fs/status", {"path": path})
        if not status["folder"]:
            return [status]
        return [s for s in self.master("/standin/v1/fs/list", {"path": path, "recursive": True})
                if not s["folder"]]

    def _wait(self, paths: list[str], timeout_ms: int) -> tuple[list[str], list[str]]:
        deadline = time.monotonic() + timeout_ms / 1000 if timeout_ms >= 0 else float("inf")
        waiting, done = list(paths), []
        while waiting and time.monotonic() < deadline:
            for path in list(waiting):
                if self.master("/standin/v1/fs/status", {"path": path})["persisted"]:
                    waiting.remove(path)
                    done.append(path)
                    self._progress(path, len(done), len(paths))
            if waiting:
                time.sleep(0.1)
        return done, waiting

    def _progress(self, path: str, done: int, total: int) -> None:
        if self.version != "1.8":
            print(f"({done}/{total}) Successfully persisted file: {path}", flush=True)

    def persist(self, args: list[str]) -> int:
        parser = _parser("persist")
        if self.version != "1.8":
            parser.add_argument("-p", "--parallelism", type=int, default=4)
            parser.add_argument("-t", "--timeout", type=int, default=20 * 60 * 1000)
            parser.add_argument("-w", "--wait", type=int, default=0)
        parser.add_argument("path", nargs="+")
        opts = parser.parse_args(args)
        if self.version == "1.8":
            return self._persist_18(opts.path)
        if (opts.wait > opts.timeout and opts.timeout != -1) or opts.wait < 0:
            print("Persistence initial wait time should be smaller than persist timeout and bigger than zero")
            return FAIL
        files = [s["path"] for p in opts.path for s in self._unpersisted(p) if not s["persisted"]]
        print(f"Found {len(files)} files to persist.", flush=True)
        for path in list(files):
            try:
                self.master("/standin/v1/fs/persist", {"path": path})
            except StandinCallError:
                print(f"Failed to persist file {path}")
                files.remove(path)
        _, late = self._wait(files, opts.timeout)
        for path in late:
            print(f"Timed out waiting for file to be persisted: {path}")
        return 0

    def _persist_18(self, paths: list[str]) -> int:
        wait_ms = int(os.environ.get("ALLUXIO_STANDIN_PERSIST_WAIT_MS", PERSIST_WAIT_18_MS))
        for path in paths:
            for status in self._unpersisted(path):
                if status["persisted"]:
                    print(f"{status['path']} is already persisted")
                    continue
                self.master("/standin/v1/fs/persist", {"path": status["path"]})
                _, late = self._wait([status["path"]], wait_ms)
                if late:
                    print(f"Timed out waiting for Wait for the file to be persisted options: "
                          f"WaitForOptions{{interval=1000, timeout={wait_ms}}}")
                    return FAIL
                print(f"persisted file {status['path']} with size {status['length']}")
        return 0

    # --- fsadmin report capacity ----------------------------------------------------------------------------

    def report(self, args: list[str]) -> int:
        if args[:1] != ["capacity"]:
            print(f"alluxio fsadmin report {' '.join(args)}: only 'capacity' is modelled by the stand-in")
            return FAIL
        workers = sorted(self.master("/standin/v1/fs/workers"), key=lambda w: w["host"])
        if not workers:
            print("No workers found.")
            return 0
        total, used = sum(w["capacity"] for w in workers), sum(w["used"] for w in workers)
        print("Capacity information for all workers: ")
        print(f"    Total Capacity: {size_text(total)}")
        print(f"        Tier: MEM  Size: {size_text(total)}")
        print(f"    Used Capacity: {size_text(used)}")
        print(f"        Tier: MEM  Size: {size_text(used)}")
        if total:
            print(f"    Used Percentage: {100 * used // total}%")
            print(f"    Free Percentage: {100 - 100 * used // total}%")
        indent = max(16, max(len(w["host"]) for w in workers) + 5)

        def row(name: str, beat: str, storage: str, tier: str, version: str, revision: str) -> str:
            return f"{name:<{indent}} {beat:<16} {storage:<13} {tier:<16} {version:<16} {revision:<40}"

        print("\n" + row("Worker Name", "Last Heartbeat", "Storage", "MEM", "Version", "Revision"))
        for w in workers:
            share = f" ({100 * w['used'] // w['capacity']}%)" if w["capacity"] else ""
            print(row(w["host"], "0", "capacity", size_text(w["capacity"]), f"{self.version}.0", ""))
            print(row("", "", "used", size_text(w["used"]) + share, "", ""))
        return 0


def size_text(size: int) -> str:
    """``FormatUtils.getSizeFromBytes``."""
    value = float(size)
    if value <= 1024 * 5:
        return f"{size}B"
    for unit in ("KB", "MB", "GB", "TB", "PB"):
        value /= 1024
        if value <= 1024 * 5:
            return f"{value:.2f}{unit}"
    return f"{value / 1024:.2f}EB"


class _Refused(Exception):
    pass


def _parser(name: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=name, add_help=False, allow_abbrev=False)

    def refuse(message: str) -> NoReturn:
        raise _Refused(message)

    parser.error = refuse  # type: ignore[method-assign]
    return parser


def _usage(name: str, usage: str, description: str, given: int) -> int:
    print(f'Command {name} takes 1 argument, not {given}')
    print(f"Usage: {usage}")
    print(description)
    return FAIL


def run(version: str, properties: Mapping[str, str], argv: Sequence[str]) -> int:
    cli = Cli(version, properties)
    shell, *rest = argv or [""]
    known = {"fs": FS_COMMANDS, "fsadmin": FSADMIN_COMMANDS}.get(shell)
    if known is None:
        print(f"alluxio {shell}: only 'fs', 'fsadmin' and 'formatJournal' are modelled by the stand-in",
              file=sys.stderr)
        return FAIL
    command, args = (rest[0], rest[1:]) if rest else ("", [])
    if command not in known:
        print(f"{command} is an unknown command.", file=sys.stderr)
        print(f"Usage: alluxio {shell} [generic options]", file=sys.stderr)
        return FAIL
    handler = getattr(cli, {"report": "report"}.get(command, command), None)
    if handler is None:
        print(f"alluxio {shell} {command}: not modelled by the stand-in", file=sys.stderr)
        return FAIL
    try:
        code: int = handler(list(args))
        return code
    except _Refused as exc:
        print(exc)
        return FAIL
    except StandinCallError as exc:
        print(exc)
        return FAIL


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m standins.alluxio_cli", allow_abbrev=False)
    parser.add_argument("--alluxio-version", required=True, choices=ALLUXIO_VERSIONS)
    parser.add_argument("--conf", required=True, help="path of alluxio-site.properties")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    with open(args.conf, "rb") as handle:
        properties = parse_properties(handle.read().decode("latin-1"))
    return run(args.alluxio_version, properties, args.command)


if __name__ == "__main__":
    sys.exit(main())
