"""The scaler's chart: allocation, desired and ready agents over the last hours, as SVG drawn on the server.

Pure (``chart_svg(series) -> str``): no scripts, no external fonts or styles, nothing fetched, so the master's
dashboard can inline it under its strict headers and it reads the same in a browser without JavaScript. The
geometry is fixed and public (``Frame``) so a test can say where a line must be drawn and look for its pixels.
Allocation is drawn against the right axis (0-100 %), the agent counts against the left (0 to the largest
count seen, at least 1). A point with no allocation (no signal then) leaves a gap in that line only.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

ALLOCATION_COLOUR = "#1f6fd1"  # blue
DESIRED_COLOUR = "#e8590c"  # orange
READY_COLOUR = "#2b9348"  # green


@dataclass(frozen=True)
class Frame:
    """Where the plot area is inside the SVG (pixels)."""

    width: int = 720
    height: int = 240
    left: int = 48
    right: int = 56
    top: int = 16
    bottom: int = 36

    @property
    def plot_width(self) -> int:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> int:
        return self.height - self.top - self.bottom

    def x(self, at: float, start: float, end: float) -> float:
        span = end - start or 1.0
        return self.left + (at - start) / span * self.plot_width

    def y(self, fraction: float) -> float:
        """``fraction`` of the axis (0 at the bottom, 1 at the top)."""
        return self.top + (1 - min(max(fraction, 0.0), 1.0)) * self.plot_height


FRAME = Frame()


def scale_of(series: Sequence[Sequence[float]]) -> int:
    """The left axis' top: the largest agent count in the series, at least 1."""
    return max([1, *(int(max(p[2], p[3])) for p in series)])


def chart_svg(series: Sequence[Sequence[float]], *, frame: Frame = FRAME, title: str = "Scaler") -> str:
    """``series``: points ``[at, allocation (0..1, or < 0 when unknown), desired, ready]``, oldest first."""
    width, height = frame.width, frame.height
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
             f'<title>{escape(title)}</title>',
             f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
             f'<rect x="{frame.left}" y="{frame.top}" width="{frame.plot_width}" height="{frame.plot_height}" '
             'fill="none" stroke="#999999" stroke-width="1"/>']
    if not series:
        parts.append(f'<text x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle" font-size="13" '
                     'fill="#555555">no samples yet</text></svg>')
        return "".join(parts)
    points = sorted(series, key=lambda p: p[0])
    start, end = points[0][0], points[-1][0]
    top = scale_of(points)
    for fraction in (0.0, 0.5, 1.0):  # grid and both axes' labels
        y = frame.y(fraction)
        parts.append(f'<line x1="{frame.left}" y1="{y:.1f}" x2="{width - frame.right}" y2="{y:.1f}" '
                     'stroke="#e5e5e5" stroke-width="1"/>')
        parts.append(f'<text x="{frame.left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
                     f'fill="#333333">{top * fraction:g}</text>')
        parts.append(f'<text x="{width - frame.right + 6}" y="{y + 4:.1f}" font-size="11" '
                     f'fill="#333333">{fraction:.0%}</text>')
    for at in (start, end):
        anchor = "start" if at == start else "end"
        label = time.strftime("%H:%M", time.gmtime(at))
        parts.append(f'<text x="{frame.x(at, start, end):.1f}" y="{height - frame.bottom + 16}" '
                     f'text-anchor="{anchor}" font-size="11" fill="#333333">{label} UTC</text>')
    runs: list[list[str]] = [[]]
    for p in points:
        if p[1] < 0:
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append(f"{frame.x(p[0], start, end):.1f},{frame.y(p[1]):.1f}")
    for run in runs:
        if run:
            parts.append(_line(run, ALLOCATION_COLOUR, "allocation"))
    for index, colour, name in ((2, DESIRED_COLOUR, "desired"), (3, READY_COLOUR, "ready")):
        steps = []
        for i, p in enumerate(points):  # counts change in steps, not slopes
            y = frame.y(p[index] / top)
            if i:
                steps.append(f"{frame.x(p[0], start, end):.1f},{frame.y(points[i - 1][index] / top):.1f}")
            steps.append(f"{frame.x(p[0], start, end):.1f},{y:.1f}")
        parts.append(_line(steps, colour, name))
    legend = ((ALLOCATION_COLOUR, "allocation"), (DESIRED_COLOUR, "desired"), (READY_COLOUR, "ready"))
    for i, (colour, name) in enumerate(legend):
        x = frame.left + 8 + i * 110
        y = height - 8
        parts.append(f'<line x1="{x}" y1="{y - 4}" x2="{x + 18}" y2="{y - 4}" stroke="{colour}" stroke-width="3"/>'
                     f'<text x="{x + 24}" y="{y}" font-size="11" fill="#333333">{name}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _line(points: Sequence[str], colour: str, name: str) -> str:
    return (f'<polyline class="{name}" points="{" ".join(points)}" fill="none" stroke="{colour}" '
            'stroke-width="3" stroke-linejoin="round"/>')
