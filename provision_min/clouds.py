"""One shape for every cloud: what a cluster file can be asked to do, wherever it runs.

In the style of cloud-init's datasources: the command line picks a cloud (OTC through its API, or this machine
with ``--cloud local``) and asks it the same questions. Each command prints its result for a person on
standard output and returns the exit code: 0 done (for ``status``: complete), 1 failed or not complete,
2 refused (raised as ``InputError`` before anything changed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from provision_min.confirm import Confirmation

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
EXIT_CHANGES = 3  #: ``plan --detailed-exitcode``: up would change something (terraform's convention)


@dataclass(frozen=True)
class Access:
    """How ``ssh``/``logs`` log in on OTC (the local cloud enters containers and refuses both options)."""

    user: str | None = None
    identity: Path | None = None


class Cloud(Protocol):
    def plan(self, as_json: bool, detailed_exitcode: bool) -> int:
        """Show what ``up`` would do and a summary, changing nothing (3 for pending changes when asked)."""
        ...

    def up(self, as_json: bool) -> int:
        """Create what is missing and wait until it works; safe to run again."""
        ...

    def status(self, as_json: bool) -> int:
        """Show what exists and whether the cluster is complete."""
        ...

    def scale(self, count: int, as_json: bool, wait: bool = True) -> int:
        """Set the agents' count (within the cluster file's min and max): raising it sets the desired count,
        lowering it removes the least loaded agents through their drain (``wait``: until they are gone)."""
        ...

    def down(self, confirm: Confirmation, as_json: bool) -> int:
        """Remove everything ``up`` created, once ``confirm`` agreed to its listing; safe to run again."""
        ...

    def shell(self, node: str, command: Sequence[str], access: Access, *, root: bool = False) -> int:
        """A login shell on ``node`` (named as ``status`` lists it), or ``command`` there (as root with
        ``root``: the journal of system units); the remote exit code."""
        ...
