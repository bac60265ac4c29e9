"""An agent's stop bound for its own daemon: a drop-in for ``bootstrap-agent.service`` with
``TimeoutStopSec`` = ``drain.stop_timeout`` + a margin, so that systemd gives the SIGTERM drain (the system
stopping: poweroff, ACPI from a console delete) the time the user-data grants it, and no more. The image's
unit keeps 30 s for masters, which do not drain. ``apply`` reloads systemd when the file changes, so a new
value holds for the next stop of the running daemon."""

from __future__ import annotations

from bootstrap_agent.desired import text_file
from bootstrap_agent.plan.part import Part
from bootstrap_agent.schema import Settings

DRAIN_DROPIN = "/etc/systemd/system/bootstrap-agent.service.d/50-drain.conf"
STOP_MARGIN = 30  # the daemon's own deadline ends the drain; then it deregisters and exits


def drain_stop_timeout(settings: Settings) -> Part:
    stop = settings.drain.stop_timeout
    text = (f"# Rendered by bootstrap-agent from drain.stop_timeout ({stop}s) + {STOP_MARGIN}s:\n"
            "# SIGTERM while the system stops drains the agent first (docs/node-agent.md, \"Leaving\").\n"
            f"[Service]\nTimeoutStopSec={stop + STOP_MARGIN}s\n")
    return Part((text_file(DRAIN_DROPIN, text),), ())
