"""What ``up`` and ``scale`` show while nodes boot: a live table on a terminal, plain lines otherwise.

On a terminal the table of nodes is redrawn in place (one line per node, its state and since when), so the
screen shows where every node is without scrolling; in a log or a CI job each change is one line with the
elapsed time, so the record says when each node got where.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO


@dataclass(frozen=True)
class Row:
    name: str
    role: str
    ip: str
    state: str  #: starting, booting, bootstrapping, ready, degraded, draining, off
    detail: str = ""


class Progress:
    def __init__(self, stream: TextIO, *, title: str, interactive: bool | None = None) -> None:
        self.stream = stream
        self.title = title
        self.interactive = stream.isatty() if interactive is None else interactive
        self.started = time.monotonic()
        self._last: dict[str, tuple[str, str]] = {}
        self._drawn = 0

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def update(self, rows: Sequence[Row]) -> None:
        if self.interactive:
            self._redraw(rows)
            return
        for row in rows:
            if self._last.get(row.name) != (row.state, row.detail):
                self._last[row.name] = (row.state, row.detail)
                detail = f" ({row.detail})" if row.detail else ""
                self.stream.write(f"{self.elapsed():7.1f}s  {row.name:28} {row.role:6} {row.ip:15} "
                                  f"{row.state}{detail}\n")
        self.stream.flush()

    def _redraw(self, rows: Sequence[Row]) -> None:
        lines = [f"{self.title}  [{self.elapsed():.0f} s]"]
        for row in rows:
            mark = "✔" if row.state == "ready" else "·"
            detail = f" ({row.detail})" if row.detail else ""
            lines.append(f"  {mark} {row.name:28} {row.role:6} {row.ip:15} {row.state}{detail}")
        out = []
        if self._drawn:
            out.append(f"\x1b[{self._drawn}F")  # back to the first line of the previous drawing
        out += [f"\x1b[2K{line}\n" for line in lines]
        if self._drawn > len(lines):  # fewer nodes than before (scale in): clear what is left below
            out += ["\x1b[2K\n"] * (self._drawn - len(lines))
            out.append(f"\x1b[{self._drawn - len(lines)}F")
        self.stream.write("".join(out))
        self.stream.flush()
        self._drawn = len(lines)

    def say(self, text: str) -> None:
        """A line of its own (outside the table)."""
        if self.interactive and self._drawn:
            self._drawn = 0  # the next drawing starts below this line
        self.stream.write(text + "\n")
        self.stream.flush()
