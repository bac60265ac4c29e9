"""The argument parser and log options both command lines use (``bootstrap-agent`` and ``provision-min``).

argparse's own complaint is a usage block and ``<prog> <command>: error: ...``; every other error of these
CLIs is one line ``<prog>: <message>`` with exit 2 for input the user must fix, so usage errors are too.
A command that reports to a person logs (JSON lines on stderr) only when asked: ``--verbose`` or
``--log-format json``; the agent's ``run`` and ``once`` always log (journald keeps it, nobody reads a terminal).
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

EXIT_INVALID = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse with the CLIs' error style: ``<prog>: <message> (see <prog> <command> --help)``, exit 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog.split()[0]}: {message} (see {self.prog} --help)\n")
        sys.exit(EXIT_INVALID)


def add_log_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="also print log lines (JSON, secrets masked) on stderr")
    parser.add_argument("--log-format", choices=("none", "json"), default="none",
                        help="json: log lines on stderr, as with --verbose (default: none)")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"),
                        help="the least level logged (default info)")


def logs_wanted(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "verbose", False) or getattr(args, "log_format", "none") == "json")
