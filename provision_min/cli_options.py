"""The conventions both command lines share (``provision-min`` and ``bootstrap-agent``), in one place.

* Errors: one line, ``<prog>: <message>``, exit 2 for anything the user must fix — argparse's own complaints
  too (``bootstrap_agent.cli_parser``).
* Logs: structured JSON lines on stderr only when asked (``--verbose`` or ``--log-format json``): what a
  person reads is the command's own output. The node agent's ``run`` and ``once`` always log (journald keeps
  them; nobody reads their terminal).
* Flags of one cloud are refused on the other, instead of being silently ignored.
"""

from __future__ import annotations

import argparse

# one error style and one way to ask for logs in both CLIs
from bootstrap_agent.cli_parser import OneLineParser as OneLineParser
from bootstrap_agent.cli_parser import add_log_options as add_log_options
from bootstrap_agent.cli_parser import logs_wanted as logs_wanted

LOCAL = "local"
LOCAL_ONLY = {"subnet": "--subnet", "mesos_deb": "--mesos-deb", "alluxio_tarball": "--alluxio-tarball"}
OTC_ONLY = {"create_bucket": "--create-bucket", "poll_interval": "--poll-interval", "state": "--state",
            "user": "--user", "identity": "--identity"}


def flag_refusal(args: argparse.Namespace) -> str | None:
    """The one-line complaint about a flag of the other cloud, or None."""
    local = getattr(args, "cloud", None) == LOCAL
    for dest, flag in (OTC_ONLY if local else LOCAL_ONLY).items():
        value = getattr(args, dest, None)
        if value is not None and value is not False:
            return (f"{flag}: only with --cloud local" if not local
                    else f"{flag}: not with --cloud local (an OTC option)")
    return None
