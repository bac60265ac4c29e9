"""Asking before deleting: ``down`` lists what it will remove and waits for a person to say ``yes``.

A cluster holds data (OBS is kept, but the masters' journals and the agents' work are not), so removing it is
never the default a mistyped command or a pasted script line gets: on a terminal ``down`` asks; in a script it
needs ``--yes``; with neither it refuses before any call, as the ``terraform destroy`` / ``apt`` convention goes.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

from provision_min.errors import InputError


@dataclass
class Confirmation:
    """Whether ``down`` may delete: ``--yes``, or a ``yes`` typed on the terminal after the listing."""

    assume_yes: bool
    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    out: TextIO = field(default_factory=lambda: sys.stderr)  # the question, like git's; stdout stays the result

    def check_possible(self, cluster: str) -> None:
        """Refuse at once (before credentials, lookups or deletes) when nobody could answer the question."""
        if self.assume_yes or _is_terminal(self.stdin):
            return
        raise InputError(f"down: standard input is not a terminal, so nobody can confirm; pass --yes to remove "
                         f"cluster {cluster} without asking (nothing was deleted)")

    def ask(self, cluster: str, items: Sequence[str]) -> None:
        """Print what will be removed; unless ``--yes``, go on only when the answer is ``yes``."""
        print(f"down will remove from cluster {cluster}:", file=self.out)
        for item in items:
            print(f"  - {item}", file=self.out)
        if self.assume_yes:
            return
        print(f"Remove all of this? Type 'yes' to remove cluster {cluster}: ", end="", file=self.out, flush=True)
        answer = self.stdin.readline()
        if answer.strip().lower() != "yes":
            raise InputError(f"down: not confirmed; nothing of cluster {cluster} was deleted")


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or replaced by something that is not a file
        return False
